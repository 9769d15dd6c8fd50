//! Generates the fibonacci.Fibonacci service trait and its router with
//! tonic-build's manual builder, from the description below instead of
//! proto/fibonacci.proto: tonic's protobuf path runs protoc, and there is
//! none here. The message, Number, is written by hand (src/fibonacci.rs).
//!
//! Also hands main.rs the versions it names on its `listening on` line:
//! tonic's and tokio's from this package's Cargo.lock, and rustc's.

use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;

use tonic_build::manual::{Builder, Method, Service};

/// One method of the service: its Rust name, the name on the wire
/// (/fibonacci.Fibonacci/NAME), and whether each side streams.
fn method(name: &str, route_name: &str, client_streaming: bool, server_streaming: bool) -> Method {
    let mut method = Method::builder()
        .name(name)
        .route_name(route_name)
        .input_type("crate::fibonacci::Number")
        .output_type("crate::fibonacci::Number")
        .codec_path("tonic_prost::ProstCodec");
    if client_streaming {
        method = method.client_streaming();
    }
    if server_streaming {
        method = method.server_streaming();
    }
    method.build()
}

/// The version of `package` that Cargo.lock pins.
fn locked_version(lock: &str, package: &str) -> String {
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == name_line {
            if let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = \""))
            {
                return version.trim_end_matches('"').to_owned();
            }
        }
    }
    panic!("{package} is not in Cargo.lock");
}

fn main() {
    // proto/fibonacci.proto, method by method, in its order.
    let fibonacci = Service::builder()
        .name("Fibonacci")
        .package("fibonacci")
        .method(method("at_index", "AtIndex", false, false))
        .method(method("get_sequence", "GetSequence", false, true))
        .method(method("sum_indicies", "SumIndicies", true, false))
        .method(method("stream_sequence", "StreamSequence", true, true))
        .build();
    Builder::new().build_client(false).compile(&[fibonacci]);

    let manifest_dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    let lock_path = Path::new(&manifest_dir).join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path).expect("Cargo.lock: run cargo generate-lockfile");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!(
        "cargo:rustc-env=TONIC_VERSION={}",
        locked_version(&lock, "tonic")
    );
    println!(
        "cargo:rustc-env=TOKIO_VERSION={}",
        locked_version(&lock, "tokio")
    );

    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = Command::new(rustc)
        .arg("--version")
        .output()
        .expect("rustc --version");
    // "rustc 1.95.0 (59807616e 2026-04-14)": the version is the second word.
    let rustc_version = String::from_utf8_lossy(&rustc_version.stdout);
    let rustc_version = rustc_version.split_whitespace().nth(1).unwrap_or("unknown");
    println!("cargo:rustc-env=RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-changed=build.rs");
}
