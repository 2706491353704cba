//! The Telemetry stream: the settings exchange, and the only channel a
//! server has to push commands to a client. It stays open for the client's
//! lifetime and is never closed from this side (the Rust client never reopens
//! one).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use raftmq_proto::broker::ConsumerGroupConfig;
use raftmq_proto::rocketmq::v2::{self as v2, Code, settings::PubSub, telemetry_command::Command};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Status, Streaming};

use crate::clients::{ClientRegistry, ServerPolicy};

pub type TelemetryStream = Pin<Box<dyn Stream<Item = Result<v2::TelemetryCommand, Status>> + Send>>;

/// The `x-mq-client-id` header every official client sends.
pub fn client_id<T>(req: &Request<T>) -> Option<String> {
    req.metadata().get("x-mq-client-id").and_then(|v| v.to_str().ok()).map(str::to_string).filter(|s| !s.is_empty())
}

fn status(code: Code, message: &str) -> Option<v2::Status> {
    Some(v2::Status { code: code as i32, message: message.to_string() })
}

/// A consumer group's config by name, as this replica has applied it.
pub type GroupLookup = Arc<dyn Fn(&str) -> Option<ConsumerGroupConfig> + Send + Sync>;

pub fn open(
    request: Request<Streaming<v2::TelemetryCommand>>,
    registry: ClientRegistry,
    policy: ServerPolicy,
    groups: GroupLookup,
) -> Result<TelemetryStream, Status> {
    let id = client_id(&request).ok_or_else(|| Status::invalid_argument("the x-mq-client-id header is required"))?;
    let mut inbound = request.into_inner();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(cmd)) = inbound.next().await {
            match cmd.command {
                Some(Command::Settings(s)) if s.pub_sub.is_some() => {
                    let group = match &s.pub_sub {
                        Some(PubSub::Subscription(sub)) => sub.group.as_ref().and_then(|g| groups(&g.name)),
                        _ => None,
                    };
                    let merged = registry.register(&id, s, Some(tx.clone()), &policy.for_group(group.as_ref()));
                    let reply = v2::TelemetryCommand {
                        status: status(Code::Ok, "OK"),
                        command: Some(Command::Settings(merged)),
                    };
                    let _ = tx.send(reply);
                }
                Some(Command::Settings(_)) => {
                    let _ = tx.send(v2::TelemetryCommand {
                        status: status(Code::BadRequest, "settings must carry publishing or subscription"),
                        command: None,
                    });
                }
                // Thread stack traces and verify results answer commands this
                // server does not send yet; they are accepted and dropped.
                _ => registry.touch(&id),
            }
        }
        // The client closed its side: forget it (its sender goes with it).
        registry.remove(&id);
    });
    Ok(Box::pin(UnboundedReceiverStream::new(rx).map(Ok)))
}
