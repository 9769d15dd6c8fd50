# The two commands a newcomer needs: `make run-server` and `make test`.
# Everything the build lacks on a fresh machine is fetched here: the gRPC C
# core's source release (built once per machine into a cache, see
# grpc-core/build.py), and the Python and npm packages of the interop suite
# (into the project tree: .venv/, interop/node/node_modules).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
CARGO       ?= cargo
# One profile for everything (tests, benchmarks, CI, running), so the crates
# are compiled once, optimised. (The C core is compiled outside cargo.)
CARGO_FLAGS := --release --locked
VENV        := $(CURDIR)/.venv
# Cargo's output, wherever CARGO_TARGET_DIR puts it; the interop suite
# finds the binaries through FIB_BIN_DIR.
BIN         := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)/release
export FIB_BIN_DIR := $(BIN)
# Where run-clients sends its calls, and extra flags for run-server
# (e.g. make run-server SERVER_ARGS="--port 50051").
ADDRESS     ?= localhost:1337
SERVER_ARGS ?=
CLIENTS     := client_unary client_server_stream client_client_stream client_bidirectional_stream

export PATH  := $(VENV)/bin:$(PATH)
# The gRPC release in grpc-core/release.txt: its C core is what the Rust
# binaries run, and interop/requirements.txt pins Python's grpcio packages
# to it through this variable.
export GRPCIO_VERSION := $(word 1,$(shell grep -v '^\#' grpc-core/release.txt))
# XDS=1: the core with xDS and RLS, every file of the release compiled, as
# Python's grpcio ships it (a cache of its own; see grpc-core/build.py).
ifdef XDS
export FIB_GRPC_CORE_XDS := $(XDS)
endif

.PHONY: help core build run-server run-clients test guide fuzz fmt image

include interop/interop.mk
include bench/bench.mk

help:
	@echo "make run-server   build and serve on [::]:1337 (SERVER_ARGS=... for flags)"
	@echo "make run-clients  run the guide's four clients against ADDRESS=$(ADDRESS)"
	@echo "make test         every check: unit, integration, doctests, interop, GUIDE.md"
	@echo "make guide        refresh GUIDE.md: its excerpts from the code, its sessions from the binaries"
	@echo "make core         only the gRPC C core $(GRPCIO_VERSION) (cached per machine; XDS=1 with xDS)"
	@echo "make interop      only the interop suite (Python, Rust, grpc-js)"
	@echo "make image        the server's OCI image, IMAGE=$(IMAGE) (buildah, root)"
	@echo "make fuzz         the fuzz targets, FUZZ_CASES=$(FUZZ_CASES) cases each"
	@echo "make soak         10 minutes of load with HTTP/2 abuse taking turns (SOAK_ARGS=...)"
	@echo "make bench        this server against the guide's Python server, tonic, and grpc-go once built (BENCHMARKS.md)"
	@echo "make bench-go     build the grpc-go 1.33 peer server (Debian packages; needs root once)"
	@echo "make bench-tonic  build the tonic 0.14 peer server (crates only; make bench builds it too)"

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	touch $@

# Downloads, verifies and compiles the core unless this machine's cache has
# it already (then it only prints where it is).
core:
	@$(PYTHON) grpc-core/build.py

build: core
	$(CARGO) build $(CARGO_FLAGS) --bins

run-server: build
	$(BIN)/server $(SERVER_ARGS)

# One client after another, as the guide runs them. On a terminal each asks
# its questions; with input piped in, each reads only its own lines, e.g.
#   printf '7\n7\n7\n5\n\n4\n2\n1\n\n' | make run-clients
run-clients: build
	@for client in $(CLIENTS); do \
	  echo "\$$ $$client $(ADDRESS)"; \
	  $(BIN)/$$client $(ADDRESS) || exit $$?; \
	done

# The core and the interop suite's packages (downloads) side by side; then
# unit and integration tests and doctests (fast, Rust only), the
# documentation with any rustdoc warning an error, then the interop suite
# against the guide's Python programs and grpc-js (GUIDE.md's check too).
test:
	@$(MAKE) --no-print-directory -j2 core interop-tools
	$(CARGO) test $(CARGO_FLAGS)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc $(CARGO_FLAGS) --no-deps
	$(MAKE) --no-print-directory interop

# GUIDE.md after a code change: the excerpts from their marked regions in
# the sources (interop/guide.py), then the terminal sessions from the real
# binaries (interop/tests/test_guide.py in update mode). make test checks
# both without writing.
guide: build $(VENV)/.interop-tools
	$(VENV)/bin/python interop/guide.py --update
	GUIDE_UPDATE=1 $(VENV)/bin/python -m pytest -q interop/tests/test_guide.py

# The fuzz targets (src/fuzz.rs; make test runs a short pass of each) with
# many more cases: bounded by FUZZ_CASES (5 million each: about 1.5 minutes).
FUZZ_CASES ?= 5000000
fuzz: core
	FUZZ_CASES=$(FUZZ_CASES) $(CARGO) test $(CARGO_FLAGS) --lib fuzz::

fmt:
	$(CARGO) fmt -p fibonacci-grpc -p fibonacci-bench

# The server's OCI image, from scratch with buildah (Debian's; root), tagged
# as deploy/kubernetes.yaml names it. See docs/running.md, "The image".
IMAGE ?= fibonacci-grpc:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
image: build
	deploy/image.sh $(BIN)/server $(IMAGE)
