//! Passes the gRPC C core's release on to the crate (`GRPC_CORE_RELEASE`),
//! and generates Rust code from the `.proto` files in `proto/` into `OUT_DIR`,
//! with no `protoc` on the machine: for each file, the messages and the
//! grpcio client and service stubs, in `<name>_generated.rs`, plus its
//! serialized `FileDescriptorProto` in `<name>_descriptor.bin` (for server
//! reflection: the same parse as the code, so the two cannot drift).
//!
//! protobuf-codegen-pure 2.x would parse a file but drop its `service`
//! block, leaving no stubs. protobuf-parse 3.x's pure parser keeps services;
//! its descriptors have the same wire format as protobuf 2.x's, so they are
//! serialized and re-read as 2.x descriptors, which feed protobuf-codegen 2.x
//! (messages) and grpcio-compiler 0.13 (stubs).

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use protobuf::descriptor::FileDescriptorSet;
use protobuf::Message as _;
use protobuf3::Message as _;

const PROTO_DIR: &str = "proto";

// guide:start protos
/// (path under proto/, name of the generated files)
const PROTOS: &[(&str, &str)] = &[
    ("fibonacci.proto", "fibonacci"),
    ("grpc/reflection/v1/reflection.proto", "reflection_v1"),
    // Only its descriptor is used (the service is grpcio-health's).
    ("grpc/health/v1/health.proto", "health_v1"),
];
// guide:end protos

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    // The release of the gRPC C core that grpcio-sys links (its `links =
    // "grpc"` metadata), for --version.
    let core_release = std::env::var("DEP_GRPC_RELEASE")?;
    println!("cargo:rustc-env=GRPC_CORE_RELEASE={core_release}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, name) in PROTOS {
        generate(proto, name, &out_dir)?;
    }
    Ok(())
}

fn generate(proto: &str, name: &str, out_dir: &Path) -> Result<(), Box<dyn Error>> {
    let proto_path = Path::new(PROTO_DIR).join(proto);
    println!("cargo:rerun-if-changed={}", proto_path.display());

    let descriptor_bytes = protobuf_parse::Parser::new()
        .pure()
        .include(PROTO_DIR)
        .input(&proto_path)
        .file_descriptor_set()?
        .write_to_bytes()?;
    let descriptors = FileDescriptorSet::parse_from_bytes(&descriptor_bytes)?;
    let files = descriptors.get_file();
    let to_generate = [proto.to_string()];

    let messages = protobuf_codegen::gen(files, &to_generate, &Default::default());
    let services = grpcio_compiler::codegen::gen(files, &to_generate);
    if services.is_empty() {
        return Err(format!("{proto}: no service was generated").into());
    }

    // The generated files open with inner attributes (`#![allow(..)]`), which
    // `include!` rejects at item level but a module body accepts, so each is
    // wrapped in a `pub mod` named after the file (the stubs refer to the
    // messages as `super::<file>::`). The generators' idioms draw lints from
    // newer compilers; they are theirs, not ours to fix.
    let mut wrapped = String::new();
    for generated in messages.iter().chain(&services) {
        let module = generated.name.trim_end_matches(".rs");
        let body = std::str::from_utf8(&generated.content)?;
        wrapped.push_str(&format!(
            "#[allow(warnings)]\npub mod {module} {{\n{body}\n}}\n"
        ));
    }
    fs::write(out_dir.join(format!("{name}_generated.rs")), wrapped)?;

    let file = files
        .iter()
        .find(|file| file.get_name() == proto)
        .ok_or_else(|| format!("{proto}: not among the parsed files"))?;
    fs::write(
        out_dir.join(format!("{name}_descriptor.bin")),
        file.write_to_bytes()?,
    )?;
    Ok(())
}
