"""deploy/kubernetes.yaml: its fields, and its arguments and probes tried on
the real server."""

import copy
import signal
import time
import urllib.request
from pathlib import Path
from typing import List

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc


from harness.servers import STEP_TIMEOUT
import fibonacci_pb2_grpc
from conftest import (FIBONACCI, MANIFEST, NOT_SERVING, PACKAGE, SERVING, at_index, open_stream_sequence,
                      wait_for)


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


# --------------------------------------------------------------------------
# The TLS overlay (deploy/tls), as kustomize would build it.

TLS_OVERLAY = MANIFEST.parent / "tls" / "kustomization.yaml"
BASE = MANIFEST.parent / "kustomization.yaml"


def json_pointer_parent(document, path: str):
    """The container a JSON Pointer's last step is in, and that step."""
    steps = [step.replace("~1", "/").replace("~0", "~") for step in path.lstrip("/").split("/")]
    for step in steps[:-1]:
        document = document[int(step)] if isinstance(document, list) else document[step]
    return document, steps[-1]


def apply_json_patch(document, operations):
    """The `add` and `replace` operations of RFC 6902, all the overlay uses."""
    for operation in operations:
        parent, step = json_pointer_parent(document, operation["path"])
        value = copy.deepcopy(operation["value"])
        if operation["op"] == "add" and isinstance(parent, list):
            if step == "-":
                parent.append(value)
            else:
                parent.insert(int(step), value)
        elif operation["op"] in ("add", "replace"):
            if operation["op"] == "replace":
                assert (int(step) < len(parent)) if isinstance(parent, list) else step in parent, operation
            parent[int(step) if isinstance(parent, list) else step] = value
        else:
            raise AssertionError(f"an operation this check does not know: {operation}")
    return document


@pytest.fixture(scope="module")
def tls_deployment(manifest):
    overlay = yaml.safe_load(TLS_OVERLAY.read_text())
    assert overlay["resources"] == [".."]
    assert yaml.safe_load(BASE.read_text())["resources"] == [MANIFEST.name]
    [patch] = overlay["patches"]
    assert patch["target"] == {"kind": "Deployment", "name": "fibonacci"}
    return apply_json_patch(copy.deepcopy(manifest["Deployment"]), yaml.safe_load(patch["patch"]))


def test_tls_overlay_mounts_the_secret_and_probes_the_health_port(tls_deployment):
    pod = tls_deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert pod["volumes"] == [{"name": "tls", "secret": {"secretName": "fibonacci-tls"}}]
    assert container["volumeMounts"] == [{"name": "tls", "mountPath": "/etc/fibonacci/tls", "readOnly": True}]
    args = container["args"]
    assert option(args, "--tls-cert") == "/etc/fibonacci/tls/tls.crt"
    assert option(args, "--tls-key") == "/etc/fibonacci/tls/tls.key"
    health_port = int(option(args, "--health-port"))
    assert (health_port, "health") in [(p["containerPort"], p["name"]) for p in container["ports"]]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == health_port


def test_tls_overlay_on_the_real_server(launch, tls_deployment, pki, tmp_path):
    """The overlay's arguments start the real server, the secret's files
    laid out as the kubelet mounts them: TLS on the main port (a plaintext
    client is refused), and the probes' health checks answered in plaintext
    on the health port, which serves nothing else."""
    from test_tls import mount_secret  # the kubelet's layout of a secret

    mount_secret(tmp_path, "..v1", Path(pki.server["cert"]), Path(pki.server["key"]))
    [container] = tls_deployment["spec"]["template"]["spec"]["containers"]
    args = [arg.replace("/etc/fibonacci/tls", str(tmp_path)) for arg in container["args"]]
    for flag, value in (("--host", "127.0.0.1"), ("--port", "0"), ("--metrics-port", "0"),
                        ("--health-port", "0")):
        args[args.index(flag) + 1] = value
    server = launch(*args)
    assert server.listening_line.startswith(f"listening on 127.0.0.1:{server.port} (TLS, ")
    assert server.wait_until(lambda: [line for line in server.stdout() if line.startswith("health at ")],
                             STEP_TIMEOUT), server.stdout()
    [health_line] = [line for line in server.stdout() if line.startswith("health at ")]
    health_address = health_line.split()[2]
    assert health_line == f"health at {health_address} (plaintext, the health service only)"

    with grpc.insecure_channel(health_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for probe in ("readinessProbe", "livenessProbe"):
            service = container[probe]["grpc"]["service"]
            assert health.Check(health_pb2.HealthCheckRequest(service=service),
                                timeout=STEP_TIMEOUT).status == SERVING
        with pytest.raises(grpc.RpcError) as raised:
            at_index(channel, 7)
        assert raised.value.code() is grpc.StatusCode.UNIMPLEMENTED
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])
    with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
        assert at_index(channel, 7) == 13
    with grpc.insecure_channel(server.address) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            at_index(channel, 7, timeout=2)
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE

    # On SIGTERM the health port says NOT_SERVING while calls drain.
    with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        requests, responses = open_stream_sequence(stub)
        requests.put(1)
        assert next(responses).value == 1
        server.send(signal.SIGTERM)
        with grpc.insecure_channel(health_address) as health_channel:
            health = health_pb2_grpc.HealthStub(health_channel)
            assert wait_for(lambda: health.Check(health_pb2.HealthCheckRequest(service=""),
                                                 timeout=STEP_TIMEOUT).status == NOT_SERVING, STEP_TIMEOUT)
        requests.put(None)
        assert list(responses) == []
    assert server.wait_exit() == 0
