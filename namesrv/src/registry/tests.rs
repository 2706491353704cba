//! Registry unit tests. Time is explicit: `t0 + secs(..)`, never a sleep.

use std::time::Duration;

use raftmq_proto::namesrv::{RaftRole, TopicInfo};
use tokio::time::Instant;

use super::{NodeReport, Registry, RegistryError};

const EXPIRY: Duration = Duration::from_secs(10);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn topic(name: &str, queue_count: u32) -> TopicInfo {
    TopicInfo { name: name.to_owned(), queue_count, message_types: vec![1], permission: 3 }
}

/// Node `id` of `group` in cluster "c1", at `127.0.0.1:1000+id`, no topics.
fn node(group: &str, id: u64, role: RaftRole, term: u64, leader_id: u64) -> NodeReport {
    NodeReport {
        cluster: "c1".to_owned(),
        group: group.to_owned(),
        node_id: id,
        addr: format!("127.0.0.1:{}", 1000 + id),
        role,
        term,
        leader_id,
        applied_index: 0,
        topics: Vec::new(),
    }
}

fn with_topics(mut report: NodeReport, applied_index: u64, topics: &[TopicInfo]) -> NodeReport {
    report.applied_index = applied_index;
    report.topics = topics.to_vec();
    report
}

/// A group of three: node 1 leads at `term`, nodes 2 and 3 follow it.
fn register_group(reg: &mut Registry, group: &str, term: u64, topics: &[TopicInfo], now: Instant) {
    for (id, role) in [(1, RaftRole::Leader), (2, RaftRole::Follower), (3, RaftRole::Follower)] {
        let report = with_topics(node(group, id, role, term, 1), 5, topics);
        reg.register(report, now).expect("valid report");
    }
}

fn leader_id(reg: &Registry, topic: &str, now: Instant) -> u64 {
    let routes = reg.route(topic, now).expect("route");
    routes[0].group.leader.as_ref().map_or(0, |l| l.node_id)
}

#[test]
fn route_lists_groups_and_live_nodes_in_order() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    // Registered out of order on purpose.
    for id in [3, 1, 2] {
        let role = if id == 2 { RaftRole::Leader } else { RaftRole::Follower };
        let report = with_topics(node("g2", id, role, 4, 2), 7, &[topic("T", 8)]);
        reg.register(report, t0).expect("register");
    }
    register_group(&mut reg, "g1", 3, &[topic("T", 4)], t0);
    let mut other_cluster = with_topics(node("g0", 1, RaftRole::Leader, 1, 1), 1, &[topic("T", 2)]);
    other_cluster.cluster = "c2".to_owned();
    reg.register(other_cluster, t0).expect("register");

    let routes = reg.route("T", t0 + secs(2)).expect("route");
    let names: Vec<_> = routes.iter().map(|r| (r.group.cluster.as_str(), r.group.group.as_str())).collect();
    assert_eq!(names, [("c1", "g1"), ("c1", "g2"), ("c2", "g0")]);

    let g2 = &routes[1];
    let ids: Vec<u64> = g2.group.nodes.iter().map(|n| n.node_id).collect();
    assert_eq!(ids, [1, 2, 3]);
    let leader = g2.group.leader.as_ref().expect("leader");
    assert_eq!((leader.node_id, leader.addr.as_str()), (2, "127.0.0.1:1002"));
    assert_eq!(g2.topic, topic("T", 8));
    assert_eq!(g2.group.nodes[0].since_heartbeat, secs(2));
    assert_eq!(routes[0].topic.queue_count, 4);
}

#[test]
fn leader_claim_with_highest_term_wins_and_stale_claim_reads_follower() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    register_group(&mut reg, "g1", 3, &[topic("T", 4)], t0);
    // Node 2 won term 4; node 1 has not heard yet and still claims term 3.
    let report = with_topics(node("g1", 2, RaftRole::Leader, 4, 2), 6, &[topic("T", 4)]);
    reg.register(report, t0).expect("register");

    let routes = reg.route("T", t0).expect("route");
    let group = &routes[0].group;
    assert_eq!(group.leader.as_ref().map(|l| l.node_id), Some(2));
    let leaders = group.nodes.iter().filter(|n| n.role == RaftRole::Leader);
    assert_eq!(leaders.map(|n| n.node_id).collect::<Vec<_>>(), [2]);
    assert_eq!(group.nodes[0].role, RaftRole::Follower);
}

#[test]
fn a_leader_that_is_not_live_reads_as_no_leader() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    // Followers name node 9, which never registered.
    for id in 1..=2 {
        let report = with_topics(node("g1", id, RaftRole::Follower, 2, 9), 1, &[topic("T", 1)]);
        reg.register(report, t0).expect("register");
    }
    assert_eq!(leader_id(&reg, "T", t0), 0);

    // Node 3 leads but stops heartbeating: once it expires nobody leads.
    let report = with_topics(node("g1", 3, RaftRole::Leader, 3, 3), 1, &[topic("T", 1)]);
    reg.register(report, t0).expect("register");
    for id in 1..=2 {
        let report = with_topics(node("g1", id, RaftRole::Follower, 3, 3), 1, &[topic("T", 1)]);
        reg.register(report, t0 + secs(8)).expect("register");
    }
    assert_eq!(leader_id(&reg, "T", t0 + secs(9)), 3);
    assert_eq!(leader_id(&reg, "T", t0 + secs(10)), 0);
}

#[test]
fn an_expired_claim_at_a_higher_term_does_not_count() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    reg.register(node("g1", 1, RaftRole::Leader, 9, 1), t0).expect("register");
    let report = with_topics(node("g1", 2, RaftRole::Leader, 4, 2), 1, &[topic("T", 1)]);
    reg.register(report, t0 + secs(5)).expect("register");
    assert_eq!(leader_id(&reg, "T", t0 + secs(11)), 2);
}

#[test]
fn topic_info_comes_from_the_most_applied_replica() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    let lagging = with_topics(node("g1", 1, RaftRole::Follower, 1, 2), 10, &[topic("T", 4)]);
    let ahead = with_topics(node("g1", 2, RaftRole::Leader, 1, 2), 12, &[topic("T", 8)]);
    reg.register(ahead, t0).expect("register");
    reg.register(lagging, t0).expect("register");
    assert_eq!(reg.route("T", t0).expect("route")[0].topic, topic("T", 8));
}

#[test]
fn topics_are_the_union_until_deleted_everywhere() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    let both = [topic("A", 1), topic("B", 1)];
    reg.register(with_topics(node("g1", 1, RaftRole::Leader, 1, 1), 3, &both), t0).expect("ok");
    reg.register(with_topics(node("g1", 2, RaftRole::Follower, 1, 1), 2, &both[..1]), t0).expect("ok");

    let info = reg.cluster_info(t0);
    let names: Vec<&str> = info[0].topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);

    // Node 1 applies the deletion of B; node 2 never had it.
    reg.register(with_topics(node("g1", 1, RaftRole::Leader, 1, 1), 4, &both[..1]), t0).expect("ok");
    assert_eq!(reg.route("B", t0), Err(RegistryError::TopicNotFound("B".to_owned())));
    assert_eq!(reg.cluster_info(t0)[0].topics, [topic("A", 1)]);
}

#[test]
fn a_node_expires_exactly_at_the_expiry_unless_it_heartbeats() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    register_group(&mut reg, "g1", 1, &[topic("T", 1)], t0);
    // Node 1 keeps heartbeating; 2 and 3 go silent.
    reg.register(with_topics(node("g1", 1, RaftRole::Leader, 1, 1), 5, &[topic("T", 1)]), t0 + secs(6))
        .expect("register");

    let just_before = t0 + EXPIRY - Duration::from_millis(1);
    assert_eq!(reg.route("T", just_before).expect("route")[0].group.nodes.len(), 3);
    let nodes = &reg.route("T", t0 + EXPIRY).expect("route")[0].group.nodes;
    assert_eq!(nodes.iter().map(|n| n.node_id).collect::<Vec<_>>(), [1]);

    // Reads already hide expired nodes; the sweep only frees them.
    assert_eq!(reg.node_count(), 3);
    assert_eq!(reg.expire(t0 + EXPIRY), 2);
    assert_eq!(reg.node_count(), 1);
    assert_eq!(reg.expire(t0 + secs(16)), 1);
    assert!(reg.cluster_info(t0 + secs(16)).is_empty());
    assert_eq!(reg.route("T", t0 + secs(16)), Err(RegistryError::TopicNotFound("T".to_owned())));
}

#[test]
fn unregister_removes_a_node_at_once_and_is_idempotent() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    register_group(&mut reg, "g1", 1, &[topic("T", 1)], t0);
    assert_eq!(reg.unregister("c1", "g1", 1), Ok(true));
    assert_eq!(reg.unregister("c1", "g1", 1), Ok(false));
    assert_eq!(reg.unregister("c1", "nope", 1), Ok(false));

    let group = &reg.route("T", t0).expect("route")[0].group;
    assert_eq!(group.nodes.len(), 2);
    assert_eq!(group.leader, None, "followers still name node 1, which is gone");

    assert_eq!(reg.unregister("c1", "g1", 0), Err(RegistryError::ZeroNodeId { group: "g1".to_owned() }));
    assert_eq!(reg.unregister("", "g1", 2), Err(RegistryError::EmptyCluster));
    reg.unregister("c1", "g1", 2).expect("unregister");
    reg.unregister("c1", "g1", 3).expect("unregister");
    assert_eq!(reg.node_count(), 0);
    assert!(reg.cluster_info(t0).is_empty());
}

#[test]
fn invalid_registrations_are_rejected_and_store_nothing() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    let valid = || with_topics(node("g1", 1, RaftRole::Leader, 1, 1), 1, &[topic("T", 1)]);
    type Spoil = fn(&mut NodeReport);
    let cases: [(Spoil, &str); 5] = [
        (|r| r.cluster.clear(), "cluster must not be empty"),
        (|r| r.group.clear(), "group must not be empty (cluster 'c1')"),
        (|r| r.node_id = 0, "node_id must not be 0, which means 'no node' (group 'g1')"),
        (|r| r.addr.clear(), "addr must not be empty (group 'g1', node 1)"),
        (|r| r.topics[0].name.clear(), "a topic reported by group 'g1', node 1 has an empty name"),
    ];
    for (spoil, message) in cases {
        let mut report = valid();
        spoil(&mut report);
        let err = reg.register(report, t0).expect_err("invalid report");
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(reg.node_count(), 0);
}

#[test]
fn route_rejects_an_empty_topic_and_reports_an_unknown_one() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    register_group(&mut reg, "g1", 1, &[topic("T", 1)], t0);
    assert_eq!(reg.route("", t0), Err(RegistryError::EmptyTopic));
    let err = reg.route("Missing", t0).expect_err("unknown topic");
    assert_eq!(err.to_string(), "topic 'Missing' not found on any broker group");
}

#[test]
fn cluster_info_lists_groups_without_topics_too() {
    let t0 = Instant::now();
    let mut reg = Registry::new(EXPIRY);
    register_group(&mut reg, "g1", 1, &[], t0);
    let info = reg.cluster_info(t0);
    assert_eq!(info.len(), 1);
    assert!(info[0].topics.is_empty());
    assert_eq!(info[0].group.leader.as_ref().map(|l| l.node_id), Some(1));
}
