//! The broker's wall clock: milliseconds since the Unix epoch.
//!
//! Every wall-clock reading of the broker comes from here: the leader's entry stamps, pops'
//! and renewals' `now_ms`, firing delayed messages, retention's age cut-off. A simulation
//! replaces the source with its simulated clock ([`set_source`]) so that a seed replays the
//! same stamps; production never does and reads `SystemTime`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static SOURCE: OnceLock<fn() -> i64> = OnceLock::new();

/// Now, from the installed source or else the system clock.
pub fn now_ms() -> i64 {
    SOURCE.get().map_or_else(system_ms, |source| source())
}

/// Installs `source` for the rest of the process (simulations only). Returns `false` if a
/// source was installed already (it stays).
pub fn set_source(source: fn() -> i64) -> bool {
    SOURCE.set(source).is_ok()
}

fn system_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
