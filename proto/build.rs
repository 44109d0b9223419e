//! Compiles `vigil/v1/*.proto` with protox (a pure-Rust protobuf compiler), so no `protoc` is needed
//! on the host, and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it is compiled: cargo reuses one compiled build script
    // for checkouts of the same crate at other paths (a `git worktree` sharing the target
    // directory), and a path baked in then points at the other checkout.
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let files = [
        "vigil/v1/session.proto",
        "vigil/v1/registry.proto",
        "vigil/v1/link.proto",
        "vigil/v1/geo.proto",
        "vigil/v1/policy.proto",
        "vigil/v1/termination.proto",
        "vigil/v1/console.proto",
        "vigil/v1/events.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }

    let descriptors = protox::compile(files, [&proto_dir])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("vigil_descriptor.bin"), descriptor_bytes)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // `GatewayLink.Connect` would clash with the generated `connect` constructor; clients are
        // built from a `Channel` instead (`FooClient::new(channel)`).
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
