//! The report: a run directory gets verdict.json and index.html with every section and both
//! plots; a folder of runs gets summary.json and summary.html; the binary's exit codes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use raftmq_jepsen::checker::{AnomalyKind, Verdict};
use raftmq_jepsen::history::{Call, FaultAction, OpType};
use raftmq_jepsen::report::{self, Summary};
use raftmq_jepsen::run_info::RunInfo;
use raftmq_jepsen::testkit::{H, MS, send, send_delayed};

/// A small run; `lose` drops the read of the first message, which makes it `lost`.
fn history(lose: bool) -> H {
    let mut h = H::new();
    for i in 0..20u64 {
        h.send_ok(1, send(&format!("v{i}")), 0, i);
        if i == 5 {
            h.nemesis("kill-leader", FaultAction::Start);
            h.send_unacked(2, send("timed-out"), OpType::Info);
            h.send_unacked(2, send("rejected"), OpType::Fail);
        }
        if i == 12 {
            h.nemesis("kill-leader", FaultAction::Stop);
        }
    }
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let skip = usize::from(lose);
    let msgs: Vec<(u32, u64, &str)> =
        values.iter().enumerate().skip(skip).map(|(o, v)| (0, o as u64, v.as_str())).collect();
    let drain = h.final_read();
    h.poll_ok(9, "drain", true, &msgs);
    h.complete(drain, OpType::Ok, Call::FinalRead);
    h
}

fn write_run(dir: &Path, h: &H, name: &str) {
    fs::create_dir_all(dir.join("logs/n2")).expect("mkdir");
    let mut file = fs::File::create(dir.join(report::HISTORY_FILE)).expect("history file");
    for e in &h.entries {
        writeln!(file, "{}", serde_json::to_string(e).expect("json")).expect("write");
    }
    let info = RunInfo {
        name: Some(name.into()),
        seed: Some(424_242),
        workload: Some("queue".into()),
        nemeses: vec!["kill-leader".into()],
        versions: [("raftmq".to_string(), "ef40101".to_string())].into(),
        nodes: vec!["n1".into(), "n2".into(), "n 3".into()],
        config: [("durability".to_string(), "sync".to_string())].into(),
        ..RunInfo::default()
    };
    info.save(dir).expect("run.json");
    for log in ["logs/n1.log", "logs/n2/broker.log", "logs/n 3.log"] {
        fs::write(dir.join(log), "started\n").expect("log");
    }
}

#[test]
fn run_report_has_every_section_and_both_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), &history(false), "clean run");
    let run = report::report_run(dir.path()).expect("report");
    assert!(run.verdict.valid, "{:#?}", run.verdict.anomalies);
    assert_eq!(run.name, "clean run");

    let json = fs::read(dir.path().join(report::VERDICT_FILE)).expect("verdict.json");
    let verdict: Verdict = serde_json::from_slice(&json).expect("verdict parses");
    assert_eq!(verdict, run.verdict);

    let html = fs::read_to_string(dir.path().join(report::INDEX_FILE)).expect("index.html");
    for needle in [
        "<!DOCTYPE html>",
        "id=\"verdict\" class=\"valid\"",
        "valid: ",
        "424242",
        "version: raftmq",
        "ef40101",
        "config: durability",
        "id=\"anomalies\"",
        "inconsistent-offset",
        "id=\"stats\"",
        "p99.9",
        "<svg id=\"latency\"",
        "<svg id=\"throughput\"",
        "class=\"fault\"",
        ">kill-leader</text>",
        "<circle",
        "<path d=\"M",
        "id=\"faults\"",
        "RTO",
        "href=\"logs/n1.log\"",
        "href=\"logs/n2/broker.log\"",
        "href=\"logs/n%203.log\"",
    ] {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }
    assert_eq!(html.matches("<svg").count(), 2);
    assert_eq!(html.matches("</svg>").count(), 2);
}

#[test]
fn invalid_run_report_shows_the_anomaly_with_its_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), &history(true), "lossy run");
    let run = report::report_run(dir.path()).expect("report");
    assert_eq!(run.verdict.anomalies[&AnomalyKind::Lost].count, 1);
    let html = fs::read_to_string(dir.path().join(report::INDEX_FILE)).expect("index.html");
    for needle in
        ["class=\"invalid\"", "INVALID: lost=1", "id=\"anomaly-lost\"", "&quot;v0&quot; acked at jepsen/broker-a/0@0"]
    {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }
}

#[test]
fn a_run_with_delayed_messages_shows_their_lateness() {
    let mut h = H::new();
    h.send_ok_at(1, send_delayed("d", 2_000 * MS), 0, -1);
    h.at(2_250 * MS);
    h.poll_ok(2, "c0", false, &[(0, 0, "d")]);
    let dir = tempfile::tempdir().expect("tempdir");
    write_run(dir.path(), &h, "delayed run");
    let run = report::report_run(dir.path()).expect("report");
    let lateness = run.verdict.stats.delay.as_ref().and_then(|d| d.lateness).expect("lateness");
    assert_eq!(lateness.max_ns, 251 * MS);
    let html = fs::read_to_string(dir.path().join(report::INDEX_FILE)).expect("index.html");
    for needle in ["id=\"delay\"", "ok at offset -1", "late p50", "251 ms", "100 ms"] {
        assert!(html.contains(needle), "index.html lacks {needle:?}");
    }
    // A run without delayed messages has no such section.
    write_run(dir.path(), &history(false), "plain run");
    assert_eq!(report::report_run(dir.path()).expect("report").verdict.stats.delay, None);
    let html = fs::read_to_string(dir.path().join(report::INDEX_FILE)).expect("index.html");
    assert!(!html.contains("id=\"delay\""));
}

#[test]
fn summary_adds_up_runs_and_lists_unreadable_ones() {
    let root = tempfile::tempdir().expect("tempdir");
    write_run(&root.path().join("run-a"), &history(false), "run a");
    write_run(&root.path().join("run-b"), &history(true), "run b");
    fs::create_dir_all(root.path().join("run-c")).expect("mkdir");
    fs::write(root.path().join("run-c").join(report::HISTORY_FILE), "{not json\n").expect("write");
    fs::create_dir_all(root.path().join("notes")).expect("mkdir"); // not a run: no history

    let summary = report::summarize(root.path()).expect("summary");
    let t = &summary.totals;
    assert_eq!((t.runs, t.valid, t.invalid, t.unreadable), (3, 1, 1, 1));
    assert_eq!((t.faults, t.acknowledged), (2, 40));
    assert!(!summary.all_valid());
    assert_eq!(summary.anomalies_by_kind.len(), AnomalyKind::ALL.len());
    assert_eq!(summary.anomalies_by_kind[&AnomalyKind::Lost], 1);
    let kill = &summary.faults["kill-leader"];
    assert_eq!((kill.windows, kill.recovered, kill.not_recovered), (2, 2, 0));
    assert!(kill.median_rto_ns.is_some() && kill.worst_rto_ns >= kill.median_rto_ns);
    assert!(summary.runs[2].error.as_deref().is_some_and(|e| e.contains("line 1")));

    let json = fs::read(root.path().join(report::SUMMARY_JSON)).expect("summary.json");
    assert_eq!(serde_json::from_slice::<Summary>(&json).expect("parses"), summary);
    let html = fs::read_to_string(root.path().join(report::SUMMARY_HTML)).expect("summary.html");
    for needle in [
        "1 of 3 runs valid",
        "id=\"totals\"",
        "acknowledged messages",
        "id=\"anomalies\"",
        "id=\"faults\"",
        "median RTO",
        "worst RTO",
        "id=\"runs\"",
        "href=\"run-a/index.html\"",
        "unreadable: ",
    ] {
        assert!(html.contains(needle), "summary.html lacks {needle:?}");
    }
    assert!(root.path().join("run-b").join(report::INDEX_FILE).is_file());
}

#[test]
fn binary_exit_codes_follow_the_verdict() {
    let root = tempfile::tempdir().expect("tempdir");
    write_run(&root.path().join("good"), &history(false), "good");
    write_run(&root.path().join("bad"), &history(true), "bad");
    let bin = env!("CARGO_BIN_EXE_raftmq-jepsen");
    let run = |args: &[&Path]| Command::new(bin).args(args).output().expect("runs");

    let out = run(&[Path::new("check"), &root.path().join("good")]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("good: valid: "));

    let out = run(&[Path::new("check"), &root.path().join("bad")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("bad: INVALID: lost=1;"));

    assert_eq!(run(&[Path::new("check"), &root.path().join("missing")]).status.code(), Some(2));
    assert_eq!(run(&[Path::new("summarize"), root.path()]).status.code(), Some(1));
}
