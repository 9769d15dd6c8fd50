//! Passes the gRPC C core's release and its patches on to the crate
//! (`GRPC_CORE_RELEASE`, `GRPC_CORE_PATCH_NOTE`),
//! and generates Rust code from the `.proto` files in `proto/` into `OUT_DIR`,
//! with no `protoc` on the machine: for each file, its messages (protobuf 3)
//! in `<name>_generated.rs`, plus its serialized `FileDescriptorProto` in
//! `<name>_descriptor.bin` (for server reflection).
//!
//! Both come from protobuf-parse's pure Rust parser: protobuf-codegen runs
//! it for the messages, and build.rs runs it for the descriptor, on the same
//! file with the same include path. The generated code embeds its
//! descriptor too, and unit tests check the two are the same bytes, so the
//! schema reflection serves cannot drift from the code.
//!
//! No grpcio stubs are generated (grpcio-compiler works only with protobuf
//! 2): the Fibonacci methods and their client are typed by hand in
//! `src/proto.rs`, and unit tests check every hand-typed method path
//! against the descriptors written here.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use protobuf_codegen::{Codegen, Customize};

const PROTO_DIR: &str = "proto";

// guide:start protos
/// (path under proto/, name of the generated files)
const PROTOS: &[(&str, &str)] = &[
    ("fibonacci.proto", "fibonacci"),
    ("grpc/reflection/v1/reflection.proto", "reflection_v1"),
    ("grpc/health/v1/health.proto", "health_v1"),
];
// guide:end protos

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    // The release of the gRPC C core that grpcio-sys links (its `links =
    // "grpc"` metadata), for --version.
    let core_release = std::env::var("DEP_GRPC_RELEASE")?;
    println!("cargo:rustc-env=GRPC_CORE_RELEASE={core_release}");
    // The patches applied to that release (grpc-core/patches), as
    // --version names them after it: ", patched: a, b", or nothing.
    let patches = std::env::var("DEP_GRPC_PATCHES").unwrap_or_default();
    let patch_note = if patches.is_empty() {
        String::new()
    } else {
        format!(", patched: {}", patches.replace(',', ", "))
    };
    println!("cargo:rustc-env=GRPC_CORE_PATCH_NOTE={patch_note}");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for (proto, name) in PROTOS {
        generate(proto, name, &out_dir)?;
    }
    Ok(())
}

fn generate(proto: &str, name: &str, out_dir: &Path) -> Result<(), Box<dyn Error>> {
    let proto_path = Path::new(PROTO_DIR).join(proto);
    println!("cargo:rerun-if-changed={}", proto_path.display());

    // Each file's code in a directory of its own, so every `.rs` in it is
    // this file's (no mod.rs: the wrapping below stands for it).
    let code_dir = out_dir.join(name);
    fs::create_dir_all(&code_dir)?;
    Codegen::new()
        .pure()
        .include(PROTO_DIR)
        .input(&proto_path)
        .customize(Customize::default().gen_mod_rs(false))
        .out_dir(&code_dir)
        .run()?;

    // The generated files open with inner attributes (`#![allow(..)]`), which
    // `include!` rejects at item level but a module body accepts, so each is
    // wrapped in a `pub mod` named after the file. The generator's idioms
    // draw lints from newer compilers; they are its, not ours to fix.
    let mut wrapped = String::new();
    for entry in fs::read_dir(&code_dir)? {
        let path = entry?.path();
        let Some(module) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let body = fs::read_to_string(&path)?;
        wrapped.push_str(&format!(
            "#[allow(warnings, clippy::all)]\npub mod {module} {{\n{body}\n}}\n"
        ));
    }
    if wrapped.is_empty() {
        return Err(format!("{proto}: no code was generated").into());
    }
    fs::write(out_dir.join(format!("{name}_generated.rs")), wrapped)?;

    let descriptors = protobuf_parse::Parser::new()
        .pure()
        .include(PROTO_DIR)
        .input(&proto_path)
        .file_descriptor_set()?;
    let file = descriptors
        .file
        .iter()
        .find(|file| file.name() == proto)
        .ok_or_else(|| format!("{proto}: not among the parsed files"))?;
    fs::write(
        out_dir.join(format!("{name}_descriptor.bin")),
        file.write_to_bytes()?,
    )?;
    Ok(())
}
