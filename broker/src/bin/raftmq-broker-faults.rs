//! `raftmq-broker-faults`: `raftmq-broker` built with the `fault-journal` feature, under its own
//! name so it never replaces the production binary in `target/release`. Only Jepsen runs use it.

fn main() -> std::process::ExitCode {
    raftmq_broker::cli::main()
}
