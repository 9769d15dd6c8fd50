"""Where the repository's parts are, seen from the harness, and the Rust
binaries that `make build` puts in target/release (or FIB_BIN_DIR)."""

import os
from pathlib import Path

INTEROP = Path(__file__).resolve().parent.parent
REPO = INTEROP.parent
PROTO_DIR = REPO / "proto"
PYTHON_DIR = INTEROP / "python"
# The guide's Python stubs, generated (stubs.py), never checked in.
GENERATED = PYTHON_DIR / "generated"
NODE_DIR = INTEROP / "node"
BIN_DIR = Path(os.environ.get("FIB_BIN_DIR", REPO / "target" / "release"))
# The grpc-go peer server, built by `make bench-go` only.
GO_SERVER = REPO / "target" / "bench" / "go-server"
# The tonic peer server, built by `make bench` or `make bench-tonic`.
TONIC_SERVER = REPO / "target" / "bench" / "tonic-server"


def rust_binary(name: str, bin_dir: os.PathLike = BIN_DIR) -> Path:
    """The path of one of the project's binaries (`server`, `bench`, a
    client), which must have been built."""
    path = Path(bin_dir) / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is missing: build the Rust binaries first (make build), "
                                "or point FIB_BIN_DIR at them")
    return path
