"""deploy/kubernetes.yaml: its fields, and its arguments and probes tried on
the real server."""

import signal
import time
import urllib.request
from typing import List

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc


from harness.servers import STEP_TIMEOUT
from conftest import FIBONACCI, MANIFEST, PACKAGE, SERVING, at_index


@pytest.fixture(scope="module")
def manifest():
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {d["kind"]: d for d in documents}


def option(args: List[str], flag: str) -> str:
    assert flag in args, args
    return args[args.index(flag) + 1]


def test_manifest_deployment(manifest):
    assert set(manifest) == {"Deployment", "Service"}
    deployment = manifest["Deployment"]
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [container] = pod["containers"]
    args = container["args"]
    assert option(args, "--port") == "1337"
    assert option(args, "--host") == "[::]"
    grace = float(option(args, "--grace-period"))
    assert pod["terminationGracePeriodSeconds"] > grace
    assert [(p["containerPort"], p["name"]) for p in container["ports"]] == [(1337, "grpc"), (9090, "metrics")]
    assert option(args, "--metrics-port") == "9090"
    # Connections end, so clients of a ClusterIP Service spread too.
    assert option(args, "--max-connection-age") == "300"
    # The image `make image` builds.
    assert container["image"] == f"{PACKAGE['name']}:{PACKAGE['version']}"
    assert spec["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]

    readiness = container["readinessProbe"]["grpc"]
    liveness = container["livenessProbe"]["grpc"]
    assert readiness == {"port": 1337, "service": FIBONACCI}
    assert liveness == {"port": 1337, "service": ""}


def test_manifest_headless_service(manifest):
    service = manifest["Service"]
    assert service["apiVersion"] == "v1"
    assert service["metadata"]["name"] == "fibonacci"
    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert [(p["name"], p["port"], p["targetPort"]) for p in spec["ports"]] == [("grpc", 1337, "grpc")]
    labels = manifest["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()


def test_manifest_header_says_how_it_is_used():
    text = MANIFEST.read_text()
    header = text.split("\n---", 1)[0]
    assert "dns:///fibonacci.default.svc.cluster.local:1337" in header
    assert "round_robin" in header
    assert "make image" in header


def test_manifest_arguments_and_probes_on_the_real_server(launch, manifest):
    """The container's arguments start the real server (with the host and
    port swapped for the test's), and the health checks the probes make
    answer SERVING: what the kubelet would see."""
    container = manifest["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = "0"
    args[args.index("--metrics-port") + 1] = "0"
    server = launch(*args)
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for probe in ("readinessProbe", "livenessProbe"):
            service = container[probe]["grpc"]["service"]
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=STEP_TIMEOUT).status == SERVING
        assert at_index(channel, 7) == 13
    # What the prometheus.io annotations point a scraper at.
    metrics_lines = lambda: [line for line in server.stdout() if line.startswith("metrics at ")]  # noqa: E731
    assert server.wait_until(metrics_lines, STEP_TIMEOUT), server.stdout()
    [metrics_line] = metrics_lines()
    with urllib.request.urlopen(metrics_line.split()[-1], timeout=STEP_TIMEOUT) as response:
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="AtIndex"' in response.read().decode()
    # The pod's shutdown: SIGTERM, then the grace period the args give,
    # well inside terminationGracePeriodSeconds.
    server.send(signal.SIGTERM)
    started = time.monotonic()
    assert server.wait_exit() == 0
    assert time.monotonic() - started < manifest["Deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
