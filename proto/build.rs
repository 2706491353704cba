//! Compiles the .proto files with protox (pure Rust), so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "apache/rocketmq/v2/definition.proto",
        "apache/rocketmq/v2/service.proto",
        "raftmq/raft.proto",
        "raftmq/namesrv.proto",
        "raftmq/broker.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        // Message bodies and Raft payloads travel as `bytes::Bytes`: the same
        // buffer goes from the network into the CommitLog without a copy.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
