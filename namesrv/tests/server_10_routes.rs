//! Nameserver routing through real gRPC: a server on `127.0.0.1:0` and the
//! generated client. Exact expiry boundaries are unit-tested in the registry
//! with explicit instants; here expiry runs on real time with a short
//! configured expiry and generous margins, because paused tokio time
//! auto-advances whenever the runtime waits on real sockets.

use std::time::Duration;

use raftmq_namesrv::{Config, NameServerHandle, serve};
use raftmq_proto::namesrv::name_server_client::NameServerClient;
use raftmq_proto::namesrv::{
    ClusterInfoRequest, GroupRoute, QueryRouteRequest, RaftRole, RegisterBrokerRequest, TopicInfo,
    UnregisterBrokerRequest,
};
use tonic::Code;
use tonic::transport::Channel;

type Client = NameServerClient<Channel>;

async fn start(broker_expiry: Duration) -> NameServerHandle {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        broker_expiry,
        sweep_interval: Duration::from_millis(50),
    };
    serve(config, std::future::pending()).await.expect("serve")
}

async fn connect(server: &NameServerHandle) -> Client {
    let url = format!("http://{}", server.local_addr());
    NameServerClient::connect(url).await.expect("connect")
}

fn topic(name: &str, queue_count: u32) -> TopicInfo {
    TopicInfo { name: name.to_owned(), queue_count, message_types: vec![1], permission: 6 }
}

/// Node `id` of `group`, at port `10000 + 10 * group number + id`.
fn node(group: &str, id: u64, role: RaftRole, term: u64, leader: u64) -> RegisterBrokerRequest {
    let base: u64 = group.trim_start_matches('g').parse().unwrap_or(0) * 10;
    RegisterBrokerRequest {
        cluster: "DefaultCluster".to_owned(),
        group: group.to_owned(),
        node_id: id,
        addr: format!("127.0.0.1:{}", 10_000 + base + id),
        role: role.into(),
        term,
        leader_id: leader,
        leader_addr: format!("127.0.0.1:{}", 10_000 + base + leader),
        topics: Vec::new(),
        applied_index: 1,
    }
}

fn with_topics(mut req: RegisterBrokerRequest, topics: &[TopicInfo]) -> RegisterBrokerRequest {
    req.topics = topics.to_vec();
    req
}

/// Registers nodes 1..=3 of `group`; `leader` leads at `term`.
async fn register_group(client: &mut Client, group: &str, leader: u64, term: u64, topics: &[TopicInfo]) {
    for id in 1..=3 {
        let role = if id == leader { RaftRole::Leader } else { RaftRole::Follower };
        let req = with_topics(node(group, id, role, term, leader), topics);
        client.register_broker(req).await.expect("register");
    }
}

async fn route(client: &mut Client, topic: &str) -> Result<Vec<GroupRoute>, tonic::Status> {
    let req = QueryRouteRequest { topic: topic.to_owned() };
    Ok(client.query_route(req).await?.into_inner().groups)
}

fn node_ids(group: &GroupRoute) -> Vec<u64> {
    group.nodes.iter().map(|n| n.node_id).collect()
}

#[tokio::test]
async fn t10_route_spans_groups_with_sorted_nodes_and_leaders() {
    let server = start(Duration::from_secs(10)).await;
    let mut client = connect(&server).await;

    // g2 first: the answer must still come sorted by group name.
    register_group(&mut client, "g2", 3, 7, &[topic("Orders", 8), topic("Audit", 1)]).await;
    register_group(&mut client, "g1", 1, 3, &[topic("Orders", 4)]).await;

    let groups = route(&mut client, "Orders").await.expect("route");
    assert_eq!(groups.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), ["g1", "g2"]);
    assert_eq!(node_ids(&groups[0]), [1, 2, 3]);
    assert_eq!((groups[0].leader_id, groups[0].leader_addr.as_str()), (1, "127.0.0.1:10011"));
    assert_eq!((groups[1].leader_id, groups[1].leader_addr.as_str()), (3, "127.0.0.1:10023"));
    assert_eq!(groups[0].topic, Some(topic("Orders", 4)));
    assert_eq!(groups[1].topic, Some(topic("Orders", 8)));
    assert_eq!(groups[1].nodes[2].role, i32::from(RaftRole::Leader));

    let audit = route(&mut client, "Audit").await.expect("route");
    assert_eq!(audit.iter().map(|g| g.group.as_str()).collect::<Vec<_>>(), ["g2"]);

    let info = client.cluster_info(ClusterInfoRequest {}).await.expect("info").into_inner();
    let summary: Vec<(&str, u64, usize)> =
        info.groups.iter().map(|g| (g.group.as_str(), g.leader_id, g.topics.len())).collect();
    assert_eq!(summary, [("g1", 1, 1), ("g2", 3, 2)]);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn t11_leader_follows_a_term_change() {
    let server = start(Duration::from_secs(10)).await;
    let mut client = connect(&server).await;
    register_group(&mut client, "g1", 1, 3, &[topic("T", 4)]).await;

    // Node 2 wins term 4 and heartbeats first; node 1 still claims term 3.
    let req = with_topics(node("g1", 2, RaftRole::Leader, 4, 2), &[topic("T", 4)]);
    client.register_broker(req).await.expect("register");
    let group = &route(&mut client, "T").await.expect("route")[0];
    assert_eq!((group.leader_id, group.leader_addr.as_str()), (2, "127.0.0.1:10012"));
    let leaders: Vec<u64> =
        group.nodes.iter().filter(|n| n.role == i32::from(RaftRole::Leader)).map(|n| n.node_id).collect();
    assert_eq!(leaders, [2], "never two leaders");

    // Term 5: node 3 leads, and only a follower has said so yet.
    let req = with_topics(node("g1", 1, RaftRole::Follower, 5, 3), &[topic("T", 4)]);
    client.register_broker(req).await.expect("register");
    let group = &route(&mut client, "T").await.expect("route")[0];
    assert_eq!((group.leader_id, group.leader_addr.as_str()), (3, "127.0.0.1:10013"));
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn t12_a_silent_broker_expires_while_a_heartbeating_one_stays() {
    let expiry = Duration::from_secs(1);
    let server = start(expiry).await;
    let mut client = connect(&server).await;
    register_group(&mut client, "g1", 1, 1, &[topic("T", 2)]).await;

    // Node 1 heartbeats every 100 ms; nodes 2 and 3 go silent. Wait for
    // them to leave (well past the expiry, bounded so a bug cannot hang).
    let heartbeat = with_topics(node("g1", 1, RaftRole::Leader, 1, 1), &[topic("T", 2)]);
    let mut nodes = Vec::new();
    for _ in 0..100 {
        let reply = client.register_broker(heartbeat.clone()).await.expect("heartbeat");
        assert_eq!(reply.into_inner().expiry_ms, 1000);
        nodes = node_ids(&route(&mut client, "T").await.expect("route")[0]);
        if nodes == [1] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(nodes, [1], "silent nodes expired, the heartbeating one stayed");

    // Now node 1 goes silent too: the topic disappears with it.
    let mut last = Ok(Vec::new());
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = route(&mut client, "T").await;
        if last.is_err() {
            break;
        }
    }
    let status = last.expect_err("every node expired");
    assert_eq!(status.code(), Code::NotFound);
    let info = client.cluster_info(ClusterInfoRequest {}).await.expect("info");
    assert!(info.into_inner().groups.is_empty());
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn t13_nameservers_are_independent() {
    let (a, b) = (start(Duration::from_secs(10)).await, start(Duration::from_secs(10)).await);
    let (mut client_a, mut client_b) = (connect(&a).await, connect(&b).await);

    register_group(&mut client_a, "g1", 1, 1, &[topic("T", 4)]).await;
    assert_eq!(route(&mut client_a, "T").await.expect("route").len(), 1);
    let status = route(&mut client_b, "T").await.expect_err("b never heard of T");
    assert_eq!(status.code(), Code::NotFound);

    // Brokers register with every nameserver; then both answer alike.
    register_group(&mut client_b, "g1", 1, 1, &[topic("T", 4)]).await;
    let (ra, rb) = (route(&mut client_a, "T").await, route(&mut client_b, "T").await);
    assert_eq!(node_ids(&ra.expect("a")[0]), node_ids(&rb.expect("b")[0]));

    // Stopping one leaves the other serving.
    a.shutdown().await.expect("shutdown a");
    assert_eq!(route(&mut client_b, "T").await.expect("route").len(), 1);
    b.shutdown().await.expect("shutdown b");
}

#[tokio::test]
async fn t14_unregister_removes_a_node_at_once() {
    let server = start(Duration::from_secs(10)).await;
    let mut client = connect(&server).await;
    register_group(&mut client, "g1", 1, 1, &[topic("T", 4)]).await;

    let unregister =
        |node_id| UnregisterBrokerRequest { cluster: "DefaultCluster".to_owned(), group: "g1".to_owned(), node_id };
    client.unregister_broker(unregister(1)).await.expect("unregister");
    let group = &route(&mut client, "T").await.expect("route")[0];
    assert_eq!(node_ids(group), [2, 3]);
    assert_eq!((group.leader_id, group.leader_addr.as_str()), (0, ""), "the leader left");

    // Unregistering again is harmless: a broker may retry on shutdown.
    client.unregister_broker(unregister(1)).await.expect("idempotent");
    client.unregister_broker(unregister(2)).await.expect("unregister");
    client.unregister_broker(unregister(3)).await.expect("unregister");
    let status = route(&mut client, "T").await.expect_err("no node left");
    assert_eq!(status.code(), Code::NotFound);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn t15_bad_input_is_rejected_with_a_clear_status_and_stores_nothing() {
    let server = start(Duration::from_secs(10)).await;
    let mut client = connect(&server).await;

    let valid = || with_topics(node("g1", 1, RaftRole::Leader, 1, 1), &[topic("T", 4)]);
    type Spoil = fn(&mut RegisterBrokerRequest);
    let cases: [(Spoil, &str); 4] = [
        (|r| r.cluster.clear(), "cluster must not be empty"),
        (|r| r.group.clear(), "group must not be empty"),
        (|r| r.node_id = 0, "node_id must not be 0"),
        (|r| r.addr.clear(), "addr must not be empty"),
    ];
    for (spoil, message) in cases {
        let mut req = valid();
        spoil(&mut req);
        let status = client.register_broker(req).await.expect_err("invalid");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(message), "{status:?}");
    }
    let info = client.cluster_info(ClusterInfoRequest {}).await.expect("info");
    assert!(info.into_inner().groups.is_empty(), "nothing stored");

    let status = route(&mut client, "").await.expect_err("empty topic");
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "topic must not be empty"));
    let status = route(&mut client, "Nope").await.expect_err("unknown topic");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "topic 'Nope' not found on any broker group");
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn t16_shutdown_drains_and_closes_the_port() {
    let server = start(Duration::from_secs(10)).await;
    let addr = server.local_addr();
    let mut client = connect(&server).await;
    register_group(&mut client, "g1", 1, 1, &[topic("T", 4)]).await;

    // The client's connection is still open: shutdown must not wait on it.
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown finishes")
        .expect("clean shutdown");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "port closed");
    assert!(route(&mut client, "T").await.is_err(), "server gone");
}
