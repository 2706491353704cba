//! Interop tests only: see `tests/`. The official RocketMQ 5 Rust client is a
//! dev-dependency of this crate alone, so the broker never links it.
