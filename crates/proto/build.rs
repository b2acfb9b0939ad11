//! Compiles `proto/rapport/v1/*.proto` with protox, a pure-Rust protobuf
//! compiler, so building Rapport needs no system `protoc`.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not compile time: a build-script binary can be
    // reused for another checkout of the same sources.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["common", "profile", "classification", "routing", "outreach"]
        .map(|name| root.join(format!("rapport/v1/{name}.proto")));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let fds = protox::compile(&files, [&root])?;

    // The encoded descriptor set backs server reflection.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("rapport_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
