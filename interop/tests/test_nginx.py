"""deploy/nginx.conf run as it stands (its listen port and upstream
addresses replaced) in front of three replicas: the guide's clients, the
Python and the Rust ones, through it; health checks through it; and one
replica killed under load, with no call started after the kill failing."""

import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Tuple

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness.paths import REPO
from harness.servers import AT_INDEX, STEP_TIMEOUT
from conftest import FIBONACCI, SERVING, at_index, record, run_client, wait_for
from test_matrix import GUIDE
from test_metrics import free_port

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx",) if Path(path).exists()), None)
CONFIG = REPO / "deploy" / "nginx.conf"
UPSTREAM_SERVER = re.compile(r"^(\s*server )\S+:1337( .*)$", re.M)


def config_for(port: int, upstreams: List[str]) -> str:
    """deploy/nginx.conf listening on `port` of loopback, in front of
    `upstreams`: only those lines change."""
    text = CONFIG.read_text()
    servers = UPSTREAM_SERVER.findall(text)
    assert len(servers) == len(upstreams), servers
    replacements = iter(upstreams)
    text = UPSTREAM_SERVER.sub(lambda m: f"{m.group(1)}{next(replacements)}{m.group(2)}", text)
    listen = "listen 1337 http2;"
    assert text.count(listen) == 1
    return text.replace(listen, f"listen 127.0.0.1:{port} http2;")


@pytest.fixture
def nginx(tmp_path):
    """Starts nginx with deploy/nginx.conf for one test: `start(upstreams)`
    returns the proxy's address."""
    if NGINX is None:
        pytest.skip("nginx is not installed: `apt-get install nginx` "
                    "(.ci/run installs it when it runs as root)")
    started = []

    def start(upstreams: List[str]) -> str:
        port = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(config_for(port, upstreams))
        process = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(process)
        address = f"127.0.0.1:{port}"
        with grpc.insecure_channel(address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=STEP_TIMEOUT)
            except grpc.FutureTimeoutError:
                process.kill()
                pytest.fail(f"nginx did not start: {process.communicate()[1]}")
        return address

    yield start
    for process in started:
        process.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        try:
            process.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()


def replicas(launch, count: int = 3):
    return [launch("--log", "debug") for _ in range(count)]


@pytest.mark.parametrize("client", ["python", "rust"])
def test_the_guide_clients_through_nginx(launch, nginx, client):
    servers = replicas(launch)
    proxy = nginx([server.address for server in servers])
    for kind, (inputs, transcript) in GUIDE.items():
        session = run_client(client, kind, proxy, inputs)
        assert (session.screen, session.exit_code) == (transcript, 0), (kind, session)
        if client == "rust":
            assert session.stderr == "", (kind, session)


def test_health_checks_through_nginx(launch, nginx):
    servers = replicas(launch)
    proxy = nginx([server.address for server in servers])
    with grpc.insecure_channel(proxy) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", FIBONACCI):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=STEP_TIMEOUT)
            assert answer.status == SERVING
        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=STEP_TIMEOUT)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND


LOAD_THREADS = 4

@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_replica_stopped_under_load_costs_no_later_call(launch, nginx, how):
    """Four callers through nginx, calling AtIndex(7) in a loop, and one of
    the three replicas stopped: with SIGTERM (the server's GOAWAY, as a
    pod's shutdown sends it) or SIGKILL (a crash: no GOAWAY). Every call
    started after the replica has gone is answered, by the two left. A call
    in flight to the replica in the instant it stops may fail (at most one
    a caller, counted): one the C core refuses as its shutdown begins
    (nginx passes that on as CANCELLED), or one nginx had written to the
    replica's connection before it read the close (502, UNAVAILABLE to the
    client; nginx cannot send it elsewhere, as it forwards a gRPC request's
    body as it comes, without keeping it)."""
    servers = replicas(launch)
    proxy = nginx([server.address for server in servers])
    outcomes: List[Tuple[float, str]] = []  # (start, "ok" or the error)
    lock = threading.Lock()
    running = True

    def call_in_a_loop():
        with grpc.insecure_channel(proxy) as channel:
            while running:
                started = time.monotonic()
                try:
                    outcome = "ok" if at_index(channel, 7, timeout=STEP_TIMEOUT) == 13 else "wrong"
                except grpc.RpcError as error:
                    outcome = f"{error.code()}: {error.details()}"
                with lock:
                    outcomes.append((started, outcome))

    threads = [threading.Thread(target=call_in_a_loop) for _ in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        # Every replica has answered before the stop.
        assert wait_for(lambda: all(server.calls(AT_INDEX) for server in servers), STEP_TIMEOUT)
        time.sleep(0.5)
        stopped = servers[1]
        stopped.send(getattr(signal, how))
        stopped.process.wait(timeout=STEP_TIMEOUT)
        gone_at = time.monotonic()
        served_before = [len(server.calls(AT_INDEX)) for server in (servers[0], servers[2])]
        time.sleep(2.0)
    finally:
        running = False
        for thread in threads:
            thread.join(timeout=STEP_TIMEOUT)

    after = [outcome for started, outcome in outcomes if started > gone_at]
    failed = [outcome for _, outcome in outcomes if outcome != "ok"]
    served_after = [len(server.calls(AT_INDEX)) - before
                    for server, before in zip((servers[0], servers[2]), served_before)]
    summary = (f"{how}: {len(outcomes)} calls, {len(after)} after the replica had gone; failed: "
               f"{failed[:3]} ({len(failed)}); served after by the two left: {served_after}")
    record(summary)
    assert [outcome for outcome in after if outcome != "ok"] == [], summary
    assert len(failed) <= LOAD_THREADS, summary
    assert set(failed) <= {"StatusCode.CANCELLED: CANCELLED",
                           "StatusCode.UNAVAILABLE: Received http2 header with status: 502"}, summary
    if how == "SIGTERM":
        assert stopped.process.returncode == 0, summary
    assert len(after) >= 100, summary
    # Both replicas left share the load.
    assert min(served_after) >= len(after) // 4, summary
