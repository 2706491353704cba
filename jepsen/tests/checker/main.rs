//! The checker, report and binary tests, one binary for all of them.

mod checker_10_history;
mod checker_20_anomalies;
mod checker_30_clean;
mod checker_40_availability;
mod checker_50_report;
mod checker_60_delay;
