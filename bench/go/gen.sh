#!/usr/bin/env bash
# Regenerates fibonacci.pb.go and fibonacci_grpc.pb.go from
# proto/fibonacci.proto (only needed if the proto changes: the output is
# committed). The two protoc plugins are built from Debian's sources, so they
# match the runtime the server builds against: protoc-gen-go from
# google.golang.org/protobuf (golang-google-protobuf-dev) and
# protoc-gen-go-grpc from grpc-go 1.33's own cmd/ (golang-google-grpc-dev).
# Needs protoc (protobuf-compiler). The package is `main`, next to server.go.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
gocode=${GOCODE:-/usr/share/gocode}
tools=$root/target/bench/go-tools
mkdir -p "$tools"
export GO111MODULE=off GOPATH="$gocode" GOFLAGS= GOPROXY=off GOCACHE=$root/target/bench/go-cache
go build -o "$tools/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$tools/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
option='Mfibonacci.proto=fibonacci-bench/go-server;main'
PATH=$tools:$PATH protoc -I"$root/proto" \
  --go_out="$here" --go_opt=paths=source_relative --go_opt="$option" \
  --go-grpc_out="$here" --go-grpc_opt=paths=source_relative --go-grpc_opt="$option" \
  "$root/proto/fibonacci.proto"
