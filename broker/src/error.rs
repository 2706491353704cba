//! The broker's API error: an `apache.rocketmq.v2.Code` and a message that says
//! what was wrong. Every domain failure becomes one of these in exactly one
//! place (the constructors below); handlers put it into the response body's
//! `Status`, as the RocketMQ 5 API expects (gRPC status stays OK).

use raftmq_proto::rocketmq::v2::{Code, Status};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Code::BadRequest, message)
    }

    /// No leader could be reached: the write was never proposed.
    pub fn no_leader(group: &str) -> Self {
        Self::new(Code::HaNotAvailable, format!("broker group '{group}' has no reachable leader; retry"))
    }

    /// The outcome is unknown: the write may or may not have been committed.
    pub fn timeout(what: &str) -> Self {
        Self::new(
            Code::MasterPersistenceTimeout,
            format!("{what} did not complete in time; it may or may not have been stored"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::InternalError, message)
    }

    /// The in-band status for a response body.
    pub fn status(&self) -> Status {
        Status { code: self.code as i32, message: self.message.clone() }
    }

    /// From a state-machine error reply.
    pub fn from_reply(e: &raftmq_proto::broker::Error) -> Self {
        let code = Code::try_from(e.code).unwrap_or(Code::InternalError);
        Self::new(code, e.message.clone())
    }
}

pub fn ok_status() -> Status {
    Status { code: Code::Ok as i32, message: "OK".into() }
}
