//! Generates the protobuf types (always) and the tonic client / server stubs (behind the
//! `client` / `server` features) from `logging.proto` (the original's contract, no package)
//! and `msglog/v1/message_log.proto` (the gateway's, package `msglog.v1`), with the protoc
//! binary shipped by the `protoc-bin-vendored` crate, so no system protoc is needed. Each file
//! gets its own descriptor set, so a server's reflection lists only the services it serves.
//! The gateway's messages also get the canonical protobuf JSON mapping (`pbjson`), compiled
//! behind the `json` feature.

use std::{env, io, path::PathBuf};

fn main() -> io::Result<()> {
    compile("logging.proto", "logging_descriptor.bin")?;
    compile("msglog/v1/message_log.proto", "msglog_v1_descriptor.bin")?;
    json("msglog_v1_descriptor.bin", ".msglog.v1")
}

/// The canonical protobuf JSON mapping (serde impls, `pbjson`) for the messages of `package`,
/// used behind the `json` feature (the Connect protocol's JSON codec).
fn json(descriptor: &str, package: &str) -> io::Result<()> {
    let out_dir = PathBuf::from(
        env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR is not set"))?,
    );
    let descriptors = std::fs::read(out_dir.join(descriptor))?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[package])
}

fn compile(proto: &str, descriptor: &str) -> io::Result<()> {
    println!("cargo:rerun-if-changed={proto}");
    let out_dir = PathBuf::from(
        env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR is not set"))?,
    );
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(io::Error::other)?;

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);

    tonic_prost_build::configure()
        // Transport-free stubs: the client is generic over any `GrpcService`, so the same
        // code serves a tonic `Channel` natively and a gRPC-web client in the browser.
        .build_transport(false)
        .client_mod_attribute(".", "#[cfg(feature = \"client\")]")
        .server_mod_attribute(".", "#[cfg(feature = \"server\")]")
        .file_descriptor_set_path(out_dir.join(descriptor))
        .compile_with_config(config, &[proto], &["."])
}
