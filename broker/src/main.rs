//! `raftmq-broker`: runs one replica of a broker group (see [`raftmq_broker::cli`]).

fn main() -> std::process::ExitCode {
    raftmq_broker::cli::main()
}
