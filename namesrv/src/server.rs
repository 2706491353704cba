//! Running a nameserver: bind, serve gRPC, sweep expired nodes, and stop
//! cleanly on a shutdown signal. Used by the `raftmq-namesrv` binary, by
//! launchers that run nameservers in-process, and by the tests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use raftmq_proto::namesrv::name_server_server::NameServerServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::MissedTickBehavior;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, ConfigError};
use crate::convert::millis;
use crate::service::NameServerService;

/// Why a nameserver could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("nameserver task died: {0}")]
    Crashed(#[from] JoinError),
}

/// A running nameserver.
///
/// It stops when the `shutdown` future given to [`serve`] resolves, when
/// [`shutdown`](Self::shutdown) is called, or when the handle is dropped, so
/// a launcher or test cannot leak a server holding its port.
#[derive(Debug)]
pub struct NameServerHandle {
    local_addr: SocketAddr,
    // Sending, or dropping the sender, stops the server.
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl NameServerHandle {
    /// The bound address (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets in-flight calls finish, and returns
    /// once the listening socket is closed.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        // An error only means the server already stopped; the join says how.
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }

    /// Runs until the `shutdown` future given to [`serve`] resolves and the
    /// server has drained, or until the server fails.
    pub async fn wait(self) -> Result<(), ServeError> {
        let Self { stop, task, .. } = self;
        let result = task.await;
        drop(stop);
        Ok(result??)
    }
}

/// Validates `config`, binds its listen address and starts serving in the
/// background. Returns once the port is bound, so the address in the handle
/// accepts connections at once. The server stops when `shutdown` resolves
/// (pass `std::future::pending()` to stop only through the handle).
pub async fn serve<F>(config: Config, shutdown: F) -> Result<NameServerHandle, ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let bind_error = |source| ServeError::Bind { addr: config.listen, source };
    let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;

    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            // `Err` too: the handle was dropped.
            _ = stopped => {}
        }
    };
    let service = NameServerService::new(config.broker_expiry);
    let task = tokio::spawn(run(service, listener, config.sweep_interval, signal));
    tracing::info!(
        %local_addr,
        broker_expiry_ms = millis(config.broker_expiry),
        "nameserver listening"
    );
    Ok(NameServerHandle { local_addr, stop, task })
}

async fn run(
    service: NameServerService,
    listener: TcpListener,
    sweep_interval: Duration,
    signal: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let sweeper = tokio::spawn(sweep(service.clone(), sweep_interval));
    // Heartbeats and route queries are small unary calls: send them at once
    // rather than let Nagle hold them back.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let result = Server::builder()
        .add_service(NameServerServer::new(service))
        .serve_with_incoming_shutdown(incoming, signal)
        .await;
    // The sweeper only holds the registry, so stopping it at any await is safe.
    sweeper.abort();
    match &result {
        Ok(()) => tracing::info!("nameserver stopped"),
        Err(err) => tracing::error!(%err, "nameserver failed"),
    }
    result
}

/// Frees expired nodes every `interval`. Routes already hide them, so a
/// late sweep only costs memory.
async fn sweep(service: NameServerService, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        service.expire();
    }
}

#[cfg(test)]
mod tests {
    use raftmq_proto::namesrv::name_server_server::NameServer;
    use raftmq_proto::namesrv::{RaftRole, RegisterBrokerRequest};
    use tonic::Request;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_frees_nodes_once_expired() {
        let service = NameServerService::new(Duration::from_secs(10));
        let request = RegisterBrokerRequest {
            cluster: "c1".to_owned(),
            group: "g1".to_owned(),
            node_id: 1,
            addr: "127.0.0.1:1001".to_owned(),
            role: RaftRole::Leader.into(),
            ..RegisterBrokerRequest::default()
        };
        service.register_broker(Request::new(request)).await.expect("register");
        let sweeper = tokio::spawn(sweep(service.clone(), Duration::from_secs(1)));

        tokio::time::sleep(Duration::from_millis(9_500)).await;
        assert_eq!(service.node_count(), 1, "not expired before 10 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(service.node_count(), 0, "swept by the tick at 10 s");
        sweeper.abort();
    }
}
