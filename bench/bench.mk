# The benchmark: `make bench` (the top Makefile includes this file).
#
# Builds the release binaries and the tonic peer, starts the Rust server,
# the guide's Python server (interop/python/server.py), the tonic server,
# and the grpc-go server if `make bench-go` has built it, on ports of their
# own on 127.0.0.1, and runs target/release/bench against each,
# alternating; bench/run.py does the orchestration and prints the tables
# that BENCHMARKS.md quotes. About 4-5 minutes on 2 cores. Raw results go
# to target/bench/, the plot to bench/inflight.png. BENCH_ARGS passes flags
# to run.py, e.g.
#   make bench BENCH_ARGS="--reps 1 --duration 2"
#
# Uses from the top Makefile: VENV, its $(VENV)/.created stamp (which
# creates the venv), BIN and its `build` target.

BENCH_DIR  := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
BENCH_ARGS ?=
# The grpc-go 1.33 peer server (bench/go), built by `make bench-go`. run.py
# measures it as a third server whenever this file exists; `make bench`
# itself never needs Go: it only rebuilds the binary when one was built
# before and bench/go changed since.
GO_SERVER  := $(CURDIR)/target/bench/go-server
GO_SOURCES := $(wildcard $(BENCH_DIR)/go/*.go) $(BENCH_DIR)/go/build.sh
# The tonic 0.14 peer server (bench/tonic), built by `make bench-tonic`.
# Unlike Go, it needs nothing the Rust server's build does not already need
# (cargo and crates.io), so `make bench` always builds it and run.py always
# measures it (its --no-tonic leaves it out).
TONIC_SERVER  := $(CURDIR)/target/bench/tonic-server
TONIC_SOURCES := $(wildcard $(BENCH_DIR)/tonic/src/*.rs) $(BENCH_DIR)/tonic/build.rs \
  $(BENCH_DIR)/tonic/Cargo.toml $(BENCH_DIR)/tonic/Cargo.lock $(BENCH_DIR)/tonic/build.sh

.PHONY: bench bench-go bench-tonic

bench: build $(VENV)/.bench-tools $(TONIC_SERVER) $(if $(wildcard $(GO_SERVER)),$(GO_SERVER))
	$(VENV)/bin/python $(BENCH_DIR)/run.py --bin $(BIN) --python $(VENV)/bin/python $(BENCH_ARGS)

# Offline, against Debian's packages (GOPATH=/usr/share/gocode; installs
# golang-go and golang-google-grpc-dev with apt-get when they are missing
# and we are root). Build cache: target/bench/go-cache.
bench-go: $(GO_SERVER)

$(GO_SERVER): $(GO_SOURCES)
	$(BENCH_DIR)/go/build.sh $@

# From crates.io, at the versions bench/tonic/Cargo.lock pins; no protoc.
# Its own target directory: target/bench/tonic-target.
bench-tonic: $(TONIC_SERVER)

$(TONIC_SERVER): $(TONIC_SOURCES)
	$(BENCH_DIR)/tonic/build.sh $@

# The Python server's packages (interop/requirements.txt: grpcio, protobuf,
# grpcio-tools for its stubs) and matplotlib for the plot, in one pip call
# so the two pinned lists resolve together.
$(VENV)/.bench-tools: $(VENV)/.created interop/requirements.txt $(BENCH_DIR)/requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
	  -r interop/requirements.txt -r $(BENCH_DIR)/requirements.txt
	touch $@
