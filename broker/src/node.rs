//! One broker replica: opens its stores, starts its Raft node and its gRPC
//! server (client API, Raft peers, forwarding and admin on one port), joins or
//! founds its group, and registers with the nameservers.

use openraft::type_config::async_runtime::WatchReceiver;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use openraft::BasicNode;
use raftmq_proto::broker::admin_server::AdminServer;
use raftmq_proto::broker::forward_server::ForwardServer;
use raftmq_proto::raft::raft_service_server::RaftServiceServer;
use raftmq_proto::rocketmq::v2::messaging_service_server::MessagingServiceServer;
use raftmq_raft::network::MAX_RAFT_MESSAGE_BYTES;
use raftmq_raft::{GrpcNetworkFactory, Raft, RaftGrpcService};
use raftmq_store::commitlog::CommitLog;
use raftmq_store::io::{IoBackend, RealIo};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerConfig, IoBackendKind};
use crate::proposer::Proposer;
use crate::registration::Registration;
use crate::routes::Routes;
use crate::service::admin::AdminService;
use crate::service::forward::ForwardService;
use crate::service::messaging::MessagingServiceImpl;
use crate::severable::Severable;
use crate::sm::{BrokerStateMachine, Shared};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot create data dir {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    #[error("cannot set up the I/O backend: {0}")]
    Io(String),
    #[error("cannot open the CommitLog: {0}")]
    CommitLog(String),
    #[error("cannot open the state machine: {0}")]
    StateMachine(#[from] crate::sm::SmOpenError),
    #[error("cannot start raft: {0}")]
    Raft(String),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// A running replica. Drop it or call [`BrokerNode::shutdown`] to stop it.
pub struct BrokerNode {
    pub addr: String,
    pub node_id: u64,
    pub group: String,
    pub raft: Raft<BrokerStateMachine>,
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    /// Cuts every accepted connection ([`crate::severable`]).
    sever: CancellationToken,
    registration: JoinHandle<()>,
    timer: JoinHandle<()>,
    retention: [JoinHandle<()>; 2],
}

impl BrokerNode {
    pub async fn start(config: BrokerConfig) -> Result<Self, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        let io = io_backend(&config)?;
        Self::start_with_io(config, io).await
    }

    /// [`start`](Self::start) with the CommitLog on `io` instead of the configured backend
    /// (crash tests hand in a `FaultyIo`).
    pub async fn start_with_io(config: BrokerConfig, io: Arc<dyn IoBackend>) -> Result<Self, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::DataDir(config.data_dir.clone(), e))?;
        let listener =
            tokio::net::TcpListener::bind(config.listen).await.map_err(|e| StartError::Listen(config.listen, e))?;
        let bound = listener.local_addr().map_err(|e| StartError::Listen(config.listen, e))?;
        let addr = config.advertise.clone().unwrap_or_else(|| bound.to_string());

        let log = CommitLog::open(&config.data_dir.join("commitlog"), config.commitlog_config(), io)
            .await
            .map_err(|e| StartError::CommitLog(e.to_string()))?;
        let (sm, shared) = BrokerStateMachine::open(
            &config.data_dir,
            log.clone(),
            Duration::from_millis(config.checkpoint_interval_ms),
        )?;
        let sm = sm.with_pin_interval(Duration::from_millis(config.pin_interval_ms));
        let raft_config =
            config.raft_config().to_openraft(&config.group).map_err(|e| StartError::Raft(e.to_string()))?;
        let raft = Raft::new(config.node_id, raft_config, GrpcNetworkFactory::new(&config.group), log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;

        let proposer = Proposer::new(&config.group, config.node_id, raft.clone(), shared.clone());
        let routes = Routes::new(&config.group, &addr, &config.namesrv);
        let (stop, stop_rx) = watch::channel(false);
        let sever = CancellationToken::new();
        let server = spawn_server(
            &config,
            &addr,
            listener,
            raft.clone(),
            shared.clone(),
            proposer.clone(),
            routes.clone(),
            stop_rx.clone(),
            sever.clone(),
        );

        bootstrap(&config, &raft).await?;

        let registration = Registration {
            cluster: config.cluster.clone(),
            group: config.group.clone(),
            node_id: config.node_id,
            addr: addr.clone(),
            period: Duration::from_millis(config.namesrv_heartbeat_ms),
        };
        let timer = tokio::spawn(crate::timer::run(shared.clone(), proposer.clone(), stop_rx.clone()));
        let policy =
            crate::retention::Policy { retention_ms: config.retention_ms, retention_bytes: config.retention_bytes };
        let retention = [
            tokio::spawn(crate::retention::decide_loop(shared.clone(), proposer.clone(), policy, stop_rx.clone())),
            tokio::spawn(crate::retention::purge_loop(shared.clone(), raft.clone(), stop_rx.clone())),
        ];
        let registration = tokio::spawn(registration.run(shared.clone(), proposer, routes, stop_rx));
        tracing::info!(group = %config.group, node = config.node_id, %addr, "broker replica started");
        Ok(Self {
            addr,
            node_id: config.node_id,
            group: config.group,
            raft,
            shared,
            stop,
            server,
            sever,
            registration,
            timer,
            retention,
        })
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().current_leader == Some(self.node_id)
    }

    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    /// The highest log index this replica knows to be committed.
    pub fn committed_index(&self) -> u64 {
        self.raft.metrics().borrow_watched().local_committed.map(|l| l.index).unwrap_or(0)
    }

    pub fn last_log_index(&self) -> u64 {
        self.raft.metrics().borrow_watched().last_log_index.unwrap_or(0)
    }

    /// Waits until this replica has applied `index`; false on timeout.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut rx = self.raft.metrics();
        tokio::time::timeout(timeout, async {
            while rx.borrow_and_update().last_applied.map(|l| l.index).unwrap_or(0) < index {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        })
        .await
        .unwrap_or(false)
    }

    /// Clean stop: unregister from nameservers, stop serving, stop Raft.
    ///
    /// The server stops accepting and lets calls in flight finish for up to [`DRAIN_GRACE`];
    /// then the connections still open are cut: a leader's append stream or a client's
    /// Telemetry stream never ends by itself, and a stop must not wait on a peer.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.timer).await;
        for task in &mut self.retention {
            let _ = task.await;
        }
        let _ = (&mut self.registration).await;
        let drained = tokio::time::timeout(DRAIN_GRACE, &mut self.server).await.is_ok();
        self.sever.cancel();
        if !drained {
            tracing::info!(node = self.node_id, "connections still open after the drain grace: cut");
            let _ = (&mut self.server).await;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
        self.released().await;
    }

    /// The in-process equivalent of `kill -9` for tests: stops at once, no
    /// unregistering, no final checkpoint. Data written to the page cache stays,
    /// as it would for a killed process.
    pub async fn kill(mut self) {
        self.sever.cancel();
        self.registration.abort();
        self.timer.abort();
        for task in &self.retention {
            task.abort();
        }
        self.server.abort();
        let _ = self.raft.shutdown().await;
        // An aborted task is dropped (and lets go of the stores) only when it
        // next runs: wait for that, so a restart can take the stores' locks.
        let _ = (&mut self.registration).await;
        let _ = (&mut self.timer).await;
        for task in &mut self.retention {
            let _ = task.await;
        }
        let _ = (&mut self.server).await;
        self.released().await;
    }

    /// Waits (bounded) until nothing holds the stores any more: the cut connections' tasks
    /// drop their service clones when they next run. A replica restarted in the same process
    /// then finds its stores' locks free.
    async fn released(self) {
        let shared = Arc::downgrade(&self.shared);
        let node = self.node_id;
        drop(self);
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        while shared.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(node, holders = shared.strong_count(), "the stores are still held after the stop");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// How long a stopping replica lets calls in flight finish before it cuts the connections.
pub const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// How long a stop waits for the cut connections' tasks to let go of the stores.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The configured I/O backend; `validate` already refused `undo-journal` in a build without it.
fn io_backend(config: &BrokerConfig) -> Result<Arc<dyn IoBackend>, StartError> {
    match config.io_backend {
        IoBackendKind::Real => Ok(Arc::new(RealIo)),
        #[cfg(feature = "fault-journal")]
        IoBackendKind::UndoJournal => {
            let dir = config.data_dir.join(crate::config::UNDO_JOURNAL_DIR);
            tracing::warn!(dir = %dir.display(), "fault-test I/O backend: journalling pre-images of unsynced writes");
            let io = raftmq_store::io::JournalIo::new(&dir)
                .map_err(|e| StartError::Io(format!("{}: {e}", dir.display())))?;
            Ok(Arc::new(io))
        }
        #[cfg(not(feature = "fault-journal"))]
        IoBackendKind::UndoJournal => {
            Err(StartError::Io("this build has no undo-journal backend (cargo feature fault-journal)".into()))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spawn_server(
    config: &BrokerConfig,
    addr: &str,
    listener: tokio::net::TcpListener,
    raft: Raft<BrokerStateMachine>,
    shared: Arc<Shared>,
    proposer: Proposer,
    routes: Routes,
    mut stop: watch::Receiver<bool>,
    sever: CancellationToken,
) -> JoinHandle<()> {
    let group = config.group.clone();
    let messaging = MessagingServiceImpl::new(shared.clone(), proposer.clone(), config, routes, addr);
    let max_msg = config.max_body_bytes + 1024 * 1024;
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(5)))
        .add_service(
            RaftServiceServer::new(RaftGrpcService::new(&group, raft))
                .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
        )
        .add_service(
            ForwardServer::new(ForwardService::new(&group, proposer.clone()))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(AdminServer::new(AdminService::new(&group, shared, proposer)))
        .add_service(
            MessagingServiceServer::new(messaging)
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        );
    tokio::spawn(async move {
        // tonic's own `tcp_nodelay` applies only to listeners it binds; without
        // it on accepted sockets, Nagle + delayed ACK add ~40 ms stalls.
        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .map_ok(move |conn| Severable::new(conn, sever.clone()));
        let shutdown = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, shutdown).await {
            tracing::error!("gRPC server failed: {e}");
        }
    })
}

/// Founds the group on first start: every founding member initializes with
/// the same member list (openraft accepts that; the first election decides).
async fn bootstrap(config: &BrokerConfig, raft: &Raft<BrokerStateMachine>) -> Result<(), StartError> {
    if config.initial_members.is_empty() {
        return Ok(());
    }
    let m = raft.metrics().borrow_watched().clone();
    if m.last_log_index.is_some() || m.current_term > 0 {
        return Ok(()); // this replica already has state; the group exists
    }
    let members: BTreeMap<u64, BasicNode> =
        config.initial_members.iter().map(|m| (m.id, BasicNode { addr: m.addr.clone() })).collect();
    match raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(openraft::errors::RaftError::APIError(e)) => {
            tracing::info!("group already initialized: {e}");
            Ok(())
        }
        Err(e) => Err(StartError::Raft(e.to_string())),
    }
}
