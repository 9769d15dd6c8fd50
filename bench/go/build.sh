#!/usr/bin/env bash
# Builds the grpc-go peer server (bench/go/*.go) against Debian's Go
# packages, offline: GOPATH mode over /usr/share/gocode, where
# golang-google-grpc-dev puts grpc-go 1.33.3 (the version the performance
# issue measured). No module download, no protoc (the generated code is
# committed; gen.sh regenerates it).
#
#   bench/go/build.sh [OUTPUT]       (default: target/bench/go-server)
#
# If Go or the Go sources are missing and this runs as root with apt-get, it
# installs them (and says so); otherwise it prints the apt-get line and fails.
# The build cache goes to target/bench/go-cache (GOCACHE), next to OUTPUT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/bench/go-server}
gocode=${GOCODE:-/usr/share/gocode}
# golang-github-golang-protobuf-1-5-dev, not golang-goprotobuf-dev: the
# latter pulls golang/protobuf 1.3, whose codec cannot marshal the
# APIv2 messages of fibonacci.pb.go (grpc-go 1.33 itself asks for 1.4+).
packages="golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev golang-google-protobuf-dev"

missing() {
  command -v go >/dev/null || { echo "go"; return; }
  [ -f "$gocode/src/google.golang.org/grpc/version.go" ] || { echo "grpc-go sources"; return; }
  [ -d "$gocode/src/google.golang.org/protobuf/runtime/protoimpl" ] || { echo "google.golang.org/protobuf sources"; return; }
  [ -f "$gocode/src/github.com/golang/protobuf/proto/registry.go" ] || { echo "golang/protobuf 1.4+ sources"; return; }
}

what=$(missing)
if [ -n "$what" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench/go: $what not found; installing Debian's Go packages:"
    echo "+ apt-get update && apt-get install -y $packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages
    what=$(missing)
    [ -z "$what" ] || { echo "bench/go: still missing after apt-get: $what" >&2; exit 1; }
  else
    echo "bench/go: $what not found. Install Debian's Go packages (as root):" >&2
    echo "  apt-get install -y $packages" >&2
    exit 1
  fi
fi

mkdir -p "$(dirname "$out")"
cd "$here"
echo "+ go build -o $out ($(go version | cut -d' ' -f3), grpc-go $(sed -n 's/^const Version = "\(.*\)"/\1/p' "$gocode/src/google.golang.org/grpc/version.go"), GOPATH=$gocode)"
GO111MODULE=off GOPATH="$gocode" GOFLAGS= GOPROXY=off \
  GOCACHE="$(dirname "$out")/go-cache" \
  go build -trimpath -o "$out" .
