//! Generates the `Number` message and the grpcio `Fibonacci` stubs from
//! `proto/fibonacci.proto` into `OUT_DIR`, with no `protoc` on the machine.
//!
//! protobuf-codegen-pure 2.x would parse the file but drop its `service`
//! block, leaving no stubs. protobuf-parse 3.x's pure parser keeps services;
//! its descriptors have the same wire format as protobuf 2.x's, so they are
//! serialized and re-read as 2.x descriptors, which feed protobuf-codegen 2.x
//! (messages) and grpcio-compiler 0.13 (stubs). `src/proto.rs` includes the
//! result.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use protobuf::descriptor::FileDescriptorSet;
use protobuf3::Message as _;

const PROTO_DIR: &str = "proto";
const PROTO_FILE: &str = "fibonacci.proto";

fn main() -> Result<(), Box<dyn Error>> {
    let proto_path = Path::new(PROTO_DIR).join(PROTO_FILE);
    println!("cargo:rerun-if-changed={}", proto_path.display());
    println!("cargo:rerun-if-changed=build.rs");

    let descriptor_bytes = protobuf_parse::Parser::new()
        .pure()
        .include(PROTO_DIR)
        .input(&proto_path)
        .file_descriptor_set()?
        .write_to_bytes()?;
    let descriptors: FileDescriptorSet = protobuf::Message::parse_from_bytes(&descriptor_bytes)?;
    let files = descriptors.get_file();
    let to_generate = [PROTO_FILE.to_string()];

    let messages = protobuf_codegen::gen(files, &to_generate, &Default::default());
    let services = grpcio_compiler::codegen::gen(files, &to_generate);
    if services.is_empty() {
        return Err(format!("{PROTO_FILE}: no service was generated").into());
    }

    // The generated files open with inner attributes (`#![allow(..)]`), which
    // `include!` rejects at item level but a module body accepts, so each is
    // wrapped in a `pub mod` named after the file. The generators' idioms
    // draw lints from newer compilers; they are theirs, not ours to fix.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut wrapped = String::new();
    for generated in messages.iter().chain(&services) {
        let module = generated.name.trim_end_matches(".rs");
        let body = std::str::from_utf8(&generated.content)?;
        wrapped.push_str(&format!(
            "#[allow(warnings)]\npub mod {module} {{\n{body}\n}}\n"
        ));
    }
    // The serialized descriptor set, for anything that needs the schema at
    // run time (it is the same build of the proto as the code above).
    fs::write(
        out_dir.join("fibonacci_descriptor_set.bin"),
        &descriptor_bytes,
    )?;
    fs::write(out_dir.join("fibonacci_generated.rs"), wrapped)?;
    Ok(())
}
