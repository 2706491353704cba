mod commitlog_common;
use commitlog_common::*;
use openraft::storage::RaftLogStorage;
use tempfile::TempDir;
#[tokio::test]
async fn dbg_purge() {
    let dir = TempDir::new().unwrap();
    let mut log = open(dir.path(), cfg()).await;
    append(&mut log, normals(1, 1, 20, 10_000)).await.unwrap();
    log.purge(log_id(1, 100)).await.unwrap();
    let end = log.end_position();
    append(&mut log, vec![normal(2, 101, 10)]).await.unwrap();
    eprintln!("end {end} pos {:?} files {:?}", log.record_position(101), segment_files(dir.path()));
    drop(log);
    let log = open(dir.path(), cfg()).await;
    eprintln!("first {:?} last {:?} end {}", log.first_index(), log.last_log_id(), log.end_position());
}
