//! Online membership: leader transfer to a chosen replica, removing a replica,
//! adding a new one that catches up and then votes.

use std::time::Duration;

use raftmq_broker::config::DurabilityMode;
use raftmq_cli::devcluster::{DevCluster, DevClusterSpec};
use raftmq_client::producer::Message;
use raftmq_client::{Cluster, Producer};
use raftmq_proto::broker::{AddReplicaRequest, RemoveReplicaRequest, TransferLeaderRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_remove_and_add_replicas_online() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DevClusterSpec {
        groups: 1,
        replicas: 3,
        data_dir: dir.path().to_path_buf(),
        namesrv_port: 21_389,
        base_port: 21_381,
        durability: DurabilityMode::Sync,
    };
    let mut cluster = DevCluster::start(&spec).await.unwrap();
    cluster.wait_for_leaders(Duration::from_secs(10)).await.unwrap();
    let client = Cluster::new(std::slice::from_ref(&cluster.namesrv_addr)).unwrap();
    client.create_topic("t", 2, &[]).await.unwrap();
    let producer = Producer::new(client.clone());
    for i in 0..100 {
        producer.send(Message::new("t", format!("a{i}"))).await.unwrap();
    }

    // Transfer leadership to a chosen follower, through a non-leader replica.
    let leader = cluster.leader_of(0).unwrap();
    let target = (leader + 1) % 3;
    let via = (leader + 2) % 3;
    let via_addr = cluster.nodes[0][via].as_ref().unwrap().addr.clone();
    let mut admin = client.admin(&via_addr).unwrap();
    let r = admin.transfer_leader(TransferLeaderRequest { node_id: target as u64 + 1 }).await.unwrap().into_inner();
    assert!(r.error.is_none(), "{:?}", r.error);
    tokio::time::timeout(Duration::from_secs(5), async {
        while cluster.leader_of(0) != Some(target) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the chosen replica leads");

    // Remove a follower, then add a brand-new replica 4 that catches up. The
    // admin calls go to the remaining follower, which forwards them.
    let victim = (target + 1) % 3;
    let other = (target + 2) % 3;
    let mut admin = client.admin(&cluster.nodes[0][other].as_ref().unwrap().addr).unwrap();
    let r = admin.remove_replica(RemoveReplicaRequest { node_id: victim as u64 + 1 }).await.unwrap().into_inner();
    assert!(r.error.is_none(), "{:?}", r.error);
    cluster.kill(0, victim).await;
    for i in 0..100 {
        producer.send(Message::new("t", format!("b{i}"))).await.unwrap();
    }
    let addr = cluster.start_joiner(0, 4, 21_385).await.unwrap();
    let r = admin.add_replica(AddReplicaRequest { node_id: 4, addr }).await.unwrap().into_inner();
    assert!(r.error.is_none(), "{:?}", r.error);
    let status = r.status.unwrap();
    let voters: Vec<u64> = status.replicas.iter().filter(|r| r.voter).map(|r| r.node_id).collect();
    assert!(voters.contains(&4) && !voters.contains(&(victim as u64 + 1)), "voters {voters:?}");

    let leader = cluster.leader_of(0).unwrap();
    let upto = cluster.nodes[0][leader].as_ref().unwrap().committed_index();
    let joiner = cluster.nodes[0][3].as_ref().unwrap();
    assert!(joiner.wait_applied(upto, Duration::from_secs(20)).await);
    let lead = cluster.nodes[0][leader].as_ref().unwrap();
    assert_eq!(joiner.shared.log.prefix_crc(upto).unwrap(), lead.shared.log.prefix_crc(upto).unwrap());
    // The group still commits with its new membership.
    producer.send(Message::new("t", "after")).await.unwrap();
    cluster.shutdown().await;
}
