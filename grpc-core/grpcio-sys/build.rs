//! Links the gRPC C core that `grpc-core/build.py` built (in a cache
//! outside the work tree) and compiles the grpcwrap helpers against its
//! headers. The core itself takes a quarter of an hour or more to compile,
//! so it is not built here: `make build` (or `python3 grpc-core/build.py`)
//! does it once per machine, with progress, and this script only finds it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let grpc_core = manifest_dir.parent().expect("grpc-core/grpcio-sys has a parent");
    let build_script = grpc_core.join("build.py");
    for input in [
        build_script.clone(),
        grpc_core.join("release.txt"),
        grpc_core.join("patches"),
        grpc_core.join("link-set.txt"),
    ] {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    println!("cargo:rerun-if-changed=wrap");
    // Everything build.py's cache key reads from the environment.
    for variable in [
        "FIB_GRPC_CORE_CACHE",
        "FIB_GRPC_CORE_XDS",
        "FIB_GRPC_CORE_EVERY_FILE",
        "XDG_CACHE_HOME",
        "HOME",
        "CC",
        "CXX",
        "PYTHON",
    ] {
        println!("cargo:rerun-if-env-changed={variable}");
    }

    let core_dir = locate_core(&build_script);
    let release = std::fs::read_to_string(core_dir.join("release"))
        .unwrap_or_else(|error| fail(&format!("{}: {error}", core_dir.join("release").display())));
    let library_dir = core_dir.join("lib");
    println!("cargo:rerun-if-changed={}", library_dir.join("libgrpc_core.a").display());
    println!("cargo:rustc-env=GRPC_CORE_RELEASE={}", release.trim());
    // The patches build.py applied to the release (grpc-core/patches), by
    // name, comma-separated; empty for none.
    let patches = std::fs::read_to_string(core_dir.join("patches")).unwrap_or_default();
    let patches: Vec<&str> = patches.lines().filter(|line| !line.is_empty()).collect();
    println!("cargo:rustc-env=GRPC_CORE_PATCHES={}", patches.join(","));

    let sources = core_dir.join("src");
    cc::Build::new()
        .cpp(true)
        .cpp_link_stdlib(None)
        .std("c++17")
        .flag("-fno-exceptions")
        .define("NDEBUG", None)
        .include(sources.join("include"))
        .include(sources.join("third_party/abseil-cpp"))
        .file("wrap/grpcwrap.cc")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("grpcwrap");

    // After grpcwrap, which refers to it; the C++ runtime last, since the
    // linker drops a shared library nothing before it needed.
    println!("cargo:rustc-link-search=native={}", library_dir.display());
    println!("cargo:rustc-link-lib=static=grpc_core");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:rustc-link-lib=dylib=m");
    // For the build scripts of crates that depend on this one directly
    // (DEP_GRPC_ROOT, DEP_GRPC_RELEASE).
    println!("cargo:root={}", core_dir.display());
    println!("cargo:release={}", release.trim());
    println!("cargo:patches={}", patches.join(","));
}

/// The directory of the built core, as `build.py --locate` names it (one
/// place computes the cache key); a missing build fails with what to run.
fn locate_core(build_script: &Path) -> PathBuf {
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let output = Command::new(&python)
        .arg(build_script)
        .arg("--locate")
        .output()
        .unwrap_or_else(|error| fail(&format!("cannot run {python}: {error}")));
    if !output.status.success() {
        fail(&format!(
            "the gRPC C core is not built on this machine yet: run `make build` \
             (or `{python} {}`), then build again",
            build_script.display()
        ));
    }
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Stops the build with `message` as cargo's one error line.
fn fail(message: &str) -> ! {
    println!("cargo::error={message}");
    std::process::exit(0);
}
