"""The gRPC C core this suite runs is the one docs/core.md describes: only
the files the binaries link (grpc-core/link-set.txt) compiled, xDS and RLS
left out, and everything the service and its users rely on still in.

Nothing dropped is needed: the binaries link and the rest of the suite
passes on this build. What docs/core.md says was dropped is checked here to
be absent, from the list of what was compiled and from the server's symbols.
"""

import functools
import os
import re
import subprocess
import sys

import pytest

from harness.paths import REPO, rust_binary

BUILD_PY = REPO / "grpc-core" / "build.py"
LINK_SET = REPO / "grpc-core" / "link-set.txt"
CORE_DOC = REPO / "docs" / "core.md"

sys.path.insert(0, str(BUILD_PY.parent))
import build  # noqa: E402  (grpc-core/build.py: its cache key and file names)

# What docs/core.md says the default build leaves out: each part, the
# source directories it lives in, and a symbol of the server that would be
# there if it were linked.
LEFT_OUT = {
    "xDS": (("src/core/xds/",), "grpc_core::XdsClient::"),
    "RLS": (("src/core/load_balancing/rls/",), "grpc_core::(anonymous namespace)::RlsLb"),
    "xDS's generated protos (envoy, udpa)": (
        ("src/core/ext/upb-gen/envoy/", "src/core/ext/upb-gen/udpa/"),
        "envoy_config_cluster_v3_Cluster",
    ),
    "grpclb": (("src/core/load_balancing/grpclb/grpclb.cc",), "GrpcLb::"),
    "priority": (("src/core/load_balancing/priority/",), "PriorityLb"),
    "weighted_target": (("src/core/load_balancing/weighted_target/",), "WeightedTargetLb"),
    "outlier_detection": (("src/core/load_balancing/outlier_detection/",), "OutlierDetectionLb"),
    "ring_hash": (("src/core/load_balancing/ring_hash/",), "RingHash"),
    "weighted_round_robin": (("src/core/load_balancing/weighted_round_robin/",), "WeightedRoundRobin"),
    "the promise-based HTTP/2 transport (PH2)": (
        ("src/core/ext/transport/chttp2/transport/http2_server_transport.cc",
         "src/core/ext/transport/chttp2/transport/http2_client_transport.cc"),
        "grpc_core::http2::Http2ServerTransport",
    ),
}

# What users rely on, which must stay: each part, a file of it that must be
# compiled, and a symbol of the server that shows it linked.
KEPT = {
    "TLS and mutual TLS (BoringSSL)": (
        "src/core/credentials/transport/ssl/ssl_credentials.cc", "SSL_do_handshake"),
    "round_robin": ("src/core/load_balancing/round_robin/round_robin.cc", "RoundRobin"),
    "pick_first": ("src/core/load_balancing/pick_first/pick_first.cc", "PickFirst"),
    "retries": ("src/core/client_channel/retry_filter.cc", "RetryFilter"),
    "the service config": ("src/core/service_config/service_config_impl.cc", "ServiceConfigImpl"),
    "DNS resolution (c-ares)": ("third_party/cares/cares/src/lib/ares_init.c", "ares_init_options"),
    "compression (zlib)": ("third_party/zlib/inflate.c", "inflateInit2_"),
}


def link_set():
    lines = LINK_SET.read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def core_dir():
    located = subprocess.run([sys.executable, str(BUILD_PY), "--locate"],
                             capture_output=True, text=True, env=os.environ)
    assert located.returncode == 0, "make test builds the core first"
    return located.stdout.strip()


@functools.cache
def server_symbols():
    """The server binary's symbols, demangled: read once for every case."""
    return subprocess.run(["nm", "-C", "--defined-only", rust_binary("server")],
                          capture_output=True, text=True, check=True).stdout


needs_default_build = pytest.mark.skipif(
    build.with_xds(), reason="FIB_GRPC_CORE_XDS is set: the core has every file, xDS in")


def test_the_link_set_is_for_this_release():
    release, sha256 = build.read_release()
    assert f"# release {release} {sha256}" in LINK_SET.read_text(), \
        "run python3 grpc-core/link_set.py after moving to another release"


@needs_default_build
def test_the_library_holds_the_link_set_and_nothing_else():
    members = subprocess.run(["ar", "t", f"{core_dir()}/lib/libgrpc_core.a"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(members) == sorted(build.object_name(source) for source in link_set())


def test_the_documented_counts_are_the_link_sets():
    header = re.search(r"# (\d+) of the release's (\d+) files", LINK_SET.read_text())
    linked, every = header.groups()
    assert len(link_set()) == int(linked)
    assert f"{int(linked):,} of the release's {int(every):,} files" in CORE_DOC.read_text()


@needs_default_build
@pytest.mark.parametrize("part", LEFT_OUT)
def test_what_is_left_out_is_absent(part):
    directories, symbol = LEFT_OUT[part]
    assert part in CORE_DOC.read_text(), f"docs/core.md does not name {part}"
    compiled = [source for source in link_set() if source.startswith(directories)]
    assert compiled == []
    assert symbol not in server_symbols()


@pytest.mark.parametrize("part", KEPT)
def test_what_users_rely_on_is_in(part):
    source, symbol = KEPT[part]
    assert source in link_set()
    assert symbol in server_symbols()
