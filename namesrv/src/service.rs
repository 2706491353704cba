//! The gRPC `NameServer` service: decode, call the registry, encode.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use raftmq_proto::namesrv as pb;
use raftmq_proto::namesrv::name_server_server::NameServer;
use tokio::time::Instant;
use tonic::{Request, Response, Status};

use crate::convert::millis;
use crate::registry::{NodeReport, Registry, RegistryError};

/// The `NameServer` gRPC service over one shared [`Registry`]. Clones share
/// the registry, so the sweeper and the server hold the same state.
#[derive(Debug, Clone)]
pub struct NameServerService {
    // A std mutex, not a tokio one: every critical section is a short, pure
    // registry call and none is held across an `.await`.
    registry: Arc<Mutex<Registry>>,
}

impl NameServerService {
    /// A service with an empty registry that forgets brokers `broker_expiry`
    /// after their last heartbeat.
    pub fn new(broker_expiry: Duration) -> Self {
        Self { registry: Arc::new(Mutex::new(Registry::new(broker_expiry))) }
    }

    /// Frees the nodes that expired by now; returns how many.
    pub fn expire(&self) -> usize {
        self.registry().expire(Instant::now())
    }

    /// Nodes held in memory, including expired ones not yet swept.
    pub fn node_count(&self) -> usize {
        self.registry().node_count()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry worse than
        // one stale node entry, and every broker overwrites its entry at the
        // next heartbeat, so keep serving rather than fail every request.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[tonic::async_trait]
impl NameServer for NameServerService {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let report = NodeReport::from(request.into_inner());
        let mut registry = self.registry();
        registry.register(report, Instant::now()).map_err(to_status)?;
        Ok(Response::new(pb::RegisterBrokerResponse { expiry_ms: millis(registry.expiry()) }))
    }

    async fn unregister_broker(
        &self,
        request: Request<pb::UnregisterBrokerRequest>,
    ) -> Result<Response<pb::UnregisterBrokerResponse>, Status> {
        let req = request.into_inner();
        self.registry().unregister(&req.cluster, &req.group, req.node_id).map_err(to_status)?;
        Ok(Response::new(pb::UnregisterBrokerResponse {}))
    }

    async fn query_route(
        &self,
        request: Request<pb::QueryRouteRequest>,
    ) -> Result<Response<pb::QueryRouteResponse>, Status> {
        let topic = request.into_inner().topic;
        let routes = self.registry().route(&topic, Instant::now());
        let groups = routes.map_err(to_status)?.into_iter().map(Into::into).collect();
        Ok(Response::new(pb::QueryRouteResponse { groups }))
    }

    async fn cluster_info(
        &self,
        _request: Request<pb::ClusterInfoRequest>,
    ) -> Result<Response<pb::ClusterInfoResponse>, Status> {
        let info = self.registry().cluster_info(Instant::now());
        let groups = info.into_iter().map(Into::into).collect();
        Ok(Response::new(pb::ClusterInfoResponse { groups }))
    }
}

/// The one place registry errors become gRPC statuses. This is raftmq's
/// internal API, so plain gRPC codes fit (not `apache.rocketmq.v2.Code`).
fn to_status(err: RegistryError) -> Status {
    let message = err.to_string();
    match err {
        RegistryError::TopicNotFound(_) => Status::not_found(message),
        RegistryError::EmptyCluster
        | RegistryError::EmptyGroup { .. }
        | RegistryError::ZeroNodeId { .. }
        | RegistryError::EmptyAddr { .. }
        | RegistryError::EmptyTopicName { .. }
        | RegistryError::EmptyTopic => Status::invalid_argument(message),
    }
}
