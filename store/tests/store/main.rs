//! store integration tests, one binary (one link, one debug image) for all of them.

mod commitlog_10_suite;
mod commitlog_20_recovery;
mod commitlog_30_faults;
mod commitlog_40_layout;
mod commitlog_50_journal;
mod cq_10_queue;
mod cq_20_concurrent_readers;
mod index_10_lookup;
mod index_20_recovery;
mod index_30_files;
