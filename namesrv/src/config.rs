//! The nameserver's configuration: one plain struct, one source of defaults.
//!
//! In TOML (every key optional, unknown keys rejected):
//!
//! ```toml
//! listen = "0.0.0.0:9876"
//! broker_expiry_ms = 10000
//! sweep_interval_ms = 1000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server binds. Default `0.0.0.0:9876`, the port
    /// RocketMQ's nameserver uses. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// A broker node is dropped from routes when no heartbeat arrived for
    /// this long; brokers learn it from `RegisterBrokerResponse.expiry_ms`.
    /// Default 10 s (TOML `broker_expiry_ms`).
    #[serde(rename = "broker_expiry_ms", deserialize_with = "millis")]
    pub broker_expiry: Duration,
    /// How often expired nodes are freed. Routes hide them at once anyway,
    /// so this only bounds memory. Default 1 s (TOML `sweep_interval_ms`).
    #[serde(rename = "sweep_interval_ms", deserialize_with = "millis")]
    pub sweep_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9876)),
            broker_expiry: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("broker_expiry_ms must be at least 1")]
    ZeroBrokerExpiry,
    #[error("sweep_interval_ms must be at least 1")]
    ZeroSweepInterval,
}

impl Config {
    /// Reads a TOML file; keys it leaves out keep their defaults. The result
    /// is not validated yet, so flags can still override it.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // Zero would expire every node on arrival, or spin the sweeper
        // (`tokio::time::interval` panics on zero).
        if self.broker_expiry.is_zero() {
            return Err(ConfigError::ZeroBrokerExpiry);
        }
        if self.sweep_interval.is_zero() {
            return Err(ConfigError::ZeroSweepInterval);
        }
        Ok(())
    }
}

fn millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    u64::deserialize(deserializer).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "0.0.0.0:9876");
        assert_eq!(config.broker_expiry, Duration::from_secs(10));
        config.validate().expect("defaults are valid");
    }

    #[test]
    fn toml_overrides_only_what_it_names() {
        let config: Config = toml::from_str("broker_expiry_ms = 2500").expect("parse");
        assert_eq!(config.broker_expiry, Duration::from_millis(2500));
        assert_eq!(config.sweep_interval, Config::default().sweep_interval);
        assert_eq!(config.listen, Config::default().listen);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<Config>("broker_expiry = 10").expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `broker_expiry`"), "{err}");
    }

    #[test]
    fn zero_durations_are_invalid() {
        let mut config = Config { broker_expiry: Duration::ZERO, ..Config::default() };
        assert!(matches!(config.validate(), Err(ConfigError::ZeroBrokerExpiry)));
        config.broker_expiry = Duration::from_secs(1);
        config.sweep_interval = Duration::ZERO;
        assert!(matches!(config.validate(), Err(ConfigError::ZeroSweepInterval)));
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Config::load(Path::new("/nonexistent/namesrv.toml")).expect_err("missing");
        assert!(err.to_string().contains("/nonexistent/namesrv.toml"), "{err}");
    }
}
