//! The SDK's error type.

use raftmq_proto::rocketmq::v2::Code;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker answered with a RocketMQ status code.
    #[error("broker answered {code:?}: {message}")]
    Broker { code: Code, message: String },
    /// The request did not reach a broker or no answer came back.
    #[error("transport error talking to {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// No nameserver knows the topic or the cluster.
    #[error("not found: {0}")]
    NotFound(String),
    /// A caller mistake detected before sending.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Whether trying again (possibly on another broker group) may succeed.
    /// A retried send may store the message twice if the first attempt's
    /// outcome was unknown.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Broker { code, .. } => matches!(
                code,
                Code::HaNotAvailable
                    | Code::MasterPersistenceTimeout
                    | Code::SlavePersistenceTimeout
                    | Code::ProxyTimeout
                    | Code::TooManyRequests
                    | Code::InternalServerError
                    | Code::RequestTimeout
            ),
            Error::NotFound(_) | Error::InvalidArgument(_) => false,
        }
    }

    /// The request may or may not have been stored (a timeout, or the
    /// connection failed after the request was sent).
    pub fn is_unknown_outcome(&self) -> bool {
        match self {
            Error::Transport { message, .. } => !message.contains("connect"),
            Error::Broker { code, .. } => matches!(
                code,
                Code::MasterPersistenceTimeout
                    | Code::SlavePersistenceTimeout
                    | Code::ProxyTimeout
                    | Code::RequestTimeout
            ),
            _ => false,
        }
    }

    pub(crate) fn transport(endpoint: &str, e: impl std::fmt::Display) -> Self {
        Error::Transport { endpoint: endpoint.to_string(), message: e.to_string() }
    }

    pub(crate) fn from_status(s: Option<&raftmq_proto::rocketmq::v2::Status>) -> Result<(), Error> {
        let Some(s) = s else {
            return Err(Error::Broker { code: Code::InternalError, message: "response without status".into() });
        };
        match Code::try_from(s.code) {
            Ok(Code::Ok) => Ok(()),
            Ok(code) => Err(Error::Broker { code, message: s.message.clone() }),
            Err(_) => Err(Error::Broker {
                code: Code::InternalError,
                message: format!("unknown code {}: {}", s.code, s.message),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable() {
        assert!(Error::transport("x", "refused").is_retriable());
        assert!(Error::Broker { code: Code::HaNotAvailable, message: String::new() }.is_retriable());
        assert!(!Error::Broker { code: Code::TopicNotFound, message: String::new() }.is_retriable());
    }
}
