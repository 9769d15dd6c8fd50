#!/usr/bin/env bash
# Builds the tonic peer server (bench/tonic) from crates.io, with the
# versions bench/tonic/Cargo.lock pins: no protoc (build.rs generates the
# service from a description in Rust), nothing but cargo.
#
#   bench/tonic/build.sh [OUTPUT]       (default: target/bench/tonic-server)
#
# Its own target directory, target/bench/tonic-target, so that this build
# and the workspace's never share or lock each other's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/bench/tonic-server}
target_dir=$root/target/bench/tonic-target

mkdir -p "$(dirname "$out")"
echo "+ cargo build --release --locked --manifest-path bench/tonic/Cargo.toml --target-dir target/bench/tonic-target"
cargo build --release --locked --manifest-path "$here/Cargo.toml" --target-dir "$target_dir"
# Copied beside OUTPUT, then renamed over it: a server still running from
# the old binary keeps its file, and nothing ever sees half a binary.
cp "$target_dir/release/tonic-server" "$out.tmp"
mv -f "$out.tmp" "$out"
echo "bench/tonic: built $out"
