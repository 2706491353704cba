//! The software of one simulated host: the real CommitLog (on a `FaultyIo`, background I/O as
//! tasks), the real `BrokerStateMachine`, openraft with the real gRPC Raft network and the real
//! proposer and forwarding service, all over turmoil's network and clock. This is the
//! `BrokerNode` wiring minus the client API, nameserver registration and admin services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use raftmq_broker::proposer::Proposer;
use raftmq_broker::service::forward::ForwardService;
use raftmq_broker::sm::BrokerStateMachine;
use raftmq_proto::broker::forward_server::ForwardServer;
use raftmq_proto::raft::raft_service_server::RaftServiceServer;
use raftmq_raft::network::MAX_RAFT_MESSAGE_BYTES;
use raftmq_raft::{GrpcNetworkFactory, Raft, RaftConfig, RaftGrpcService};
use raftmq_store::commitlog::{BackgroundIo, CommitLog, CommitLogConfig};
use raftmq_store::io::FaultyIo;

use crate::net;
use crate::workload;
use crate::world::{GROUP, NODES, Replica, World, host};

/// Small segments, so the log rolls (and creates segments) during a run.
const SEGMENT_BYTES: u64 = 256 << 10;
/// How long a group commit's fdatasync takes: the window in which appended entries are
/// written but not durable, which a crash that loses unsynced writes throws away.
const SYNC_LATENCY: Duration = Duration::from_millis(3);
/// Checkpoints often, so restarts recover from one and re-apply the rest.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(700);

pub async fn run(world: Arc<World>, id: u64) -> turmoil::Result {
    let boot = world.next_boot(id);
    let dir = world.dir.join(host(id));
    let io = FaultyIo::new();
    let cfg = CommitLogConfig {
        segment_bytes: SEGMENT_BYTES,
        background_io: BackgroundIo::SimulatedTasks { sync_latency: SYNC_LATENCY },
        ..CommitLogConfig::default()
    };
    let log = CommitLog::open(&dir.join("commitlog"), cfg, Arc::new(io.clone())).await?;
    let (sm, shared) = BrokerStateMachine::open_inline(&dir, log.clone(), CHECKPOINT_INTERVAL)?;
    let listener = net::listen().await?;
    let raft_config = RaftConfig::default().to_openraft(GROUP)?;
    let network = GrpcNetworkFactory::with_dialer(GROUP, net::dialer());
    let raft = Raft::new(id, raft_config, network, log, sm).await?;
    let proposer = Proposer::with_dialer(GROUP, id, raft.clone(), shared.clone(), net::dialer())
        .with_run_id(world.boot_seed(id, boot));
    world.register(id, Replica { raft: raft.clone(), shared, io, boot });

    if boot == 1 {
        // Every founding member initializes with the same members, as BrokerNode does.
        let members: BTreeMap<u64, BasicNode> =
            NODES.iter().map(|&n| (n, BasicNode { addr: format!("{}:{}", host(n), net::PORT) })).collect();
        if let Err(e) = raft.initialize(members).await
            && !matches!(e, openraft::errors::RaftError::APIError(_))
        {
            return Err(e.into());
        }
    }
    tokio::spawn(workload::produce(world.clone(), id, boot, proposer.clone()));

    tonic::transport::Server::builder()
        .add_service(
            RaftServiceServer::new(RaftGrpcService::new(GROUP, raft))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
        )
        .add_service(ForwardServer::new(ForwardService::new(GROUP, proposer)))
        .serve_with_incoming(net::incoming(listener))
        .await?;
    Ok(())
}
