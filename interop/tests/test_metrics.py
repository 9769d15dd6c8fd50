"""The server's Prometheus metrics (`server --metrics-port`), read the way
an operator reads them: parsed with the official Python client's parser,
and scraped by a real Prometheus server and read back through its query
API.

Each test makes a known set of calls from Python grpcio (every method, the
health and reflection services too, and each way a call can fail) and then
asserts every counter of every method exactly, zeros included.

The endpoint is also flooded with idle connections, more than the server
may open files: it must go on answering scrapes, and hold no more threads,
files and memory than its bounds allow.
"""

import contextlib
import json
import resource
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

import fibonacci_pb2
import fibonacci_pb2_grpc
from conftest import record
from harness.procfs import open_file_count, resident_bytes, thread_count
from harness.servers import STEP_TIMEOUT, Server, rust_server_argv

# (grpc_type, grpc_service, grpc_method) of every method the server counts.
FIBONACCI_METHODS = {
    "AtIndex": "unary",
    "GetSequence": "server_stream",
    "SumIndicies": "client_stream",
    "StreamSequence": "bidi_stream",
}
METHODS = (
    [(kind, "fibonacci.Fibonacci", name) for name, kind in FIBONACCI_METHODS.items()]
    + [("unary", "grpc.health.v1.Health", "Check"),
       ("server_stream", "grpc.health.v1.Health", "Watch")]
    + [("bidi_stream", f"grpc.reflection.{version}.ServerReflection", "ServerReflectionInfo")
       for version in ("v1", "v1alpha")]
)
# Go's names of the status codes, as go-grpc-prometheus labels them.
CODES = [
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
    "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
    "Unauthenticated",
]

# A request past the server's 64 KiB receive limit: a Number with an
# unknown length-delimited field (2) of 70,000 bytes.
OVERSIZED = b"\x12" + bytes([0xF0, 0xA2, 0x04]) + b"\0" * 70_000


def make_known_calls(address: str) -> dict:
    """Calls every counted method, and returns what the server must have
    counted: {metric: {(type, service, method[, code]): value}}, zeros
    left out."""
    counts = {"started": {}, "handled": {}, "received": {}, "sent": {}}

    def count(kind, service, method, code, received, sent):
        key = (kind, service, method)
        for metric, value in (("started", 1), ("received", received), ("sent", sent)):
            counts[metric][key] = counts[metric].get(key, 0) + value
        handled = key + (code,)
        counts["handled"][handled] = counts["handled"].get(handled, 0) + 1

    def fib(method, code, received, sent):
        count(FIBONACCI_METHODS[method], "fibonacci.Fibonacci", method, code, received, sent)

    def failed(call) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        return raised.value.code()

    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        number = fibonacci_pb2.Number
        for _ in range(3):
            assert stub.AtIndex(number(value=7), timeout=STEP_TIMEOUT).value == 13
            fib("AtIndex", "OK", 1, 1)
        assert failed(lambda: stub.AtIndex(number(value=-1))) == grpc.StatusCode.INVALID_ARGUMENT
        fib("AtIndex", "InvalidArgument", 1, 0)
        assert failed(lambda: stub.AtIndex(number(value=47))) == grpc.StatusCode.OUT_OF_RANGE
        fib("AtIndex", "OutOfRange", 1, 0)
        raw_at_index = channel.unary_unary("/fibonacci.Fibonacci/AtIndex")
        # Refused by the C core as it arrives, before any handler sees it:
        # no call is counted for it (as with Python's grpcio server).
        assert failed(lambda: raw_at_index(OVERSIZED)) == grpc.StatusCode.RESOURCE_EXHAUSTED

        values = [reply.value for reply in stub.GetSequence(number(value=5))]
        assert values == [1, 1, 2, 3, 5]
        fib("GetSequence", "OK", 1, 5)
        assert failed(lambda: list(stub.GetSequence(number(value=47)))) == grpc.StatusCode.OUT_OF_RANGE
        fib("GetSequence", "OutOfRange", 1, 0)

        total = stub.SumIndicies(iter([number(value=i) for i in (1, 2, 3)]))
        assert total.value == 4  # 1 + 1 + 2
        fib("SumIndicies", "OK", 3, 1)

        replies = [reply.value for reply in stub.StreamSequence(iter([number(value=2), number(value=3)]))]
        assert replies == [1, 1, 2, 3, 5]
        fib("StreamSequence", "OK", 2, 5)

        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == \
            health_pb2.HealthCheckResponse.SERVING
        count("unary", "grpc.health.v1.Health", "Check", "OK", 1, 1)
        assert failed(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"))) == \
            grpc.StatusCode.NOT_FOUND
        count("unary", "grpc.health.v1.Health", "Check", "NotFound", 1, 0)

        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = list(reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        assert len(answers) == 1
        count("bidi_stream", "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", "OK", 1, 1)
    return counts


def expected_series(counts: dict) -> dict:
    """Every series the server exposes for the methods, zeros included."""
    series = {}
    for key in METHODS:
        for metric in ("started", "received", "sent"):
            series[(f"grpc_server_{metric}_total" if metric == "started"
                    else f"grpc_server_msg_{metric}_total", key)] = counts[metric].get(key, 0)
        for code in CODES:
            series[("grpc_server_handled_total", key + (code,))] = counts["handled"].get(key + (code,), 0)
        series[("grpc_server_handling_seconds_count", key)] = counts["started"].get(key, 0)
    return series


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=STEP_TIMEOUT) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return response.read().decode()


def parsed_series(text: str) -> dict:
    """{(sample name, label values): value} of the grpc_server_* samples,
    with the labels in the order of METHODS' keys (and the code last)."""
    series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("grpc_server_") or "le" in sample.labels:
                continue
            if sample.name.endswith("_sum"):
                continue
            labels = sample.labels
            key = (labels["grpc_type"], labels["grpc_service"], labels["grpc_method"])
            if "grpc_code" in labels:
                key += (labels["grpc_code"],)
            name = sample.name
            if family.type == "counter" and not name.endswith("_total"):
                name += "_total"  # the parser strips it from counter samples
            series[(name, key)] = sample.value
    return series


def sample_value(text: str, name: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} is not in the metrics")


def wait_until_idle(url: str) -> str:
    """The metrics once no call is in flight: every call the client made has
    been counted as handled (the server counts a call when its status has
    gone out, which can be just after the client has seen it)."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        text = scrape(url)
        if sample_value(text, "fibonacci_server_calls_in_flight") == 0:
            return text
        assert time.monotonic() < deadline, "calls still in flight"
        time.sleep(0.05)


def metrics_url(server) -> str:
    """The URL of the `metrics at URL` line, which follows the listening line."""
    prefix = "metrics at "
    deadline = time.monotonic() + STEP_TIMEOUT
    while not (lines := [line for line in server.stdout() if line.startswith(prefix)]):
        assert time.monotonic() < deadline, server.stdout()
        time.sleep(0.01)
    assert len(lines) == 1, server.stdout()
    return lines[0][len(prefix):]


def test_metrics_count_every_call_exactly(fresh_server):
    server = fresh_server("rust", "--metrics-port", "0")
    url = metrics_url(server)
    assert url == f"http://127.0.0.1:{urllib.parse.urlsplit(url).port}/metrics"

    before = parsed_series(scrape(url))
    assert before == expected_series({"started": {}, "handled": {}, "received": {}, "sent": {}})

    counts = make_known_calls(server.address)
    text = wait_until_idle(url)
    assert parsed_series(text) == expected_series(counts)

    rss = resident_bytes(server.process.pid)
    resident = sample_value(text, "process_resident_memory_bytes")
    assert 0.5 < resident / rss < 2, (resident, rss)
    assert sample_value(text, "process_open_fds") > 0
    assert abs(sample_value(text, "process_start_time_seconds") - time.time()) < STEP_TIMEOUT * 2


def test_metrics_endpoint_answers_only_get_metrics(fresh_server):
    server = fresh_server("rust", "--metrics-port", "0")
    url = metrics_url(server)
    root = url[: -len("/metrics")]
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(root + "/", timeout=STEP_TIMEOUT)
    assert raised.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=STEP_TIMEOUT)
    assert raised.value.code == 405


def test_without_the_flag_there_is_no_metrics_line(fresh_server):
    server = fresh_server("rust")
    with grpc.insecure_channel(server.address) as channel:
        # A call answered: start-up is long over.
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        assert stub.AtIndex(fibonacci_pb2.Number(value=7), timeout=STEP_TIMEOUT).value == 13
    assert [line for line in server.stdout() if line.startswith("metrics at ")] == []


# --------------------------------------------------------------------------
# A flood of idle connections

# The server's limit on open files in the flood tests, soft and hard: the
# server cannot raise it, and a server that held a file (or a thread) for
# every connection it was offered would run out.
FLOOD_OPEN_FILES = 1_024
# Idle connections to the metrics port: more than the server may open.
FLOODED = 2_000
FLOOD_S = 3
# What the endpoint keeps open at most with that limit: a quarter of it
# (src/metrics/endpoint.rs, ConnectionLimits::for_this_process).
METRICS_CONNECTIONS = FLOOD_OPEN_FILES // 4
# Besides those, the files a scrape and a gRPC call may hold at the moment
# the server's files are counted.
OTHER_FILES_MARGIN = 8
# The endpoint has one thread whatever its load; the margin is for the C
# core, which may start a thread of its own at any time.
THREAD_GROWTH_BOUND = 4
RSS_GROWTH_BOUND = 16 * 2**20
# The limit in the test that exhausts it: lower, as the gRPC server holds a
# file for every connection and the test need offer it only twice as many.
EXHAUSTED_OPEN_FILES = 256
# A scrape waits for no one: each new connection closes the flood's oldest.
SLOWEST_SCRAPE_BOUND_S = 1.0
# The line the endpoint logs when it cannot accept a connection.
ACCEPT_ERROR = "metrics endpoint: cannot accept a connection"


@pytest.fixture
def server_with_open_files():
    """Starts the Rust server with `--metrics-port 0` and at most `limit`
    open files (soft and hard), for one test, and stops it after."""
    started = []

    def start(limit: int) -> Server:
        server = Server(rust_server_argv("--metrics-port", "0"),
                        open_files=limit, hard_open_files=limit)
        started.append(server)
        return server.require_started()

    yield start
    for server in started:
        server.stop()


@contextlib.contextmanager
def idle_connections(port: int, count: int):
    """`count` TCP connections to 127.0.0.1:`port` that never send a byte,
    held open until the block ends. This process's own soft limit on open
    files is raised for them, and restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = count + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard limit on open files here is {hard}, too low to hold {count} connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    held = []
    try:
        for _ in range(count):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT))
        yield held
    finally:
        for connection in held:
            connection.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def at_index_7(address: str) -> int:
    """AtIndex(7), on a channel (and a connection) of its own."""
    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        return stub.AtIndex(fibonacci_pb2.Number(value=7), timeout=STEP_TIMEOUT).value


def timed_scrape(url: str) -> float:
    """Scrapes `url` (HTTP 200 and the text format, see scrape) and returns
    how long it took; the metrics must hold the gRPC counters."""
    started = time.monotonic()
    text = scrape(url)
    took = time.monotonic() - started
    assert "\n# TYPE grpc_server_started_total counter\n" in text, text[:500]
    return took


@dataclass
class Figures:
    threads: int
    files: int
    rss: int

    @staticmethod
    def of(pid: int) -> "Figures":
        return Figures(thread_count(pid), open_file_count(pid), resident_bytes(pid))

    def peak(self, other: "Figures") -> "Figures":
        return Figures(max(self.threads, other.threads), max(self.files, other.files),
                       max(self.rss, other.rss))

    def __str__(self):
        return f"{self.threads} threads, {self.files} open files, RSS {self.rss / 2**20:.1f} MiB"


def settled_files(pid: int, bound: int) -> int:
    """The server's open files once at most `bound`, or after STEP_TIMEOUT."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while (files := open_file_count(pid)) > bound and time.monotonic() < deadline:
        time.sleep(0.05)
    return files


def warmed_up_figures(server, url: str) -> Figures:
    """The server's figures once it has answered a scrape and a call (the
    first of each may start something that then stays, a C core thread
    say), and has closed their connections."""
    timed_scrape(url)
    assert at_index_7(server.address) == 13
    time.sleep(0.5)
    return Figures.of(server.pid)


def test_an_idle_flood_of_the_metrics_port_leaves_the_server_bounded_and_answering(
        server_with_open_files):
    """FLOODED idle connections to the metrics port, more than the server
    may open files, held for FLOOD_S: scrapes are answered all along, and
    the server's threads, open files and memory stay bounded, because the
    endpoint keeps at most a quarter of the open files and closes its oldest
    connection for each new one; gRPC calls on the gRPC port are answered
    too. (The endpoint it replaced took a thread for every connection, and
    its acceptor died on the first failed accept, refusing every scrape
    after.)"""
    server = server_with_open_files(FLOOD_OPEN_FILES)
    url = metrics_url(server)
    baseline = warmed_up_figures(server, url)

    latencies = []
    with idle_connections(urllib.parse.urlsplit(url).port, FLOODED):
        flooded = Figures.of(server.pid)
        peak = flooded
        deadline = time.monotonic() + FLOOD_S
        while time.monotonic() < deadline:
            latencies.append(timed_scrape(url))
            peak = peak.peak(Figures.of(server.pid))
            time.sleep(0.1)
        assert at_index_7(server.address) == 13
        peak = peak.peak(Figures.of(server.pid))
        latencies.append(timed_scrape(url))

    summary = (f"metrics flood x{FLOODED} (limit {FLOOD_OPEN_FILES} open files): "
               f"before {baseline}; all open {flooded}; peak {peak}; "
               f"{len(latencies)} scrapes, slowest {max(latencies) * 1000:.1f} ms")
    record(summary)
    assert peak.threads < baseline.threads + THREAD_GROWTH_BOUND, summary
    assert peak.files <= baseline.files + METRICS_CONNECTIONS + OTHER_FILES_MARGIN, summary
    assert peak.rss - baseline.rss < RSS_GROWTH_BOUND, summary
    assert max(latencies) < SLOWEST_SCRAPE_BOUND_S, summary
    # The cap kept the endpoint clear of the limit: no accept failed.
    assert ACCEPT_ERROR not in server.stderr(), server.stderr()


def test_the_metrics_endpoint_answers_after_an_idle_flood(server_with_open_files):
    """Once the flood's connections are closed, the endpoint closes its
    side of them too, and answers as before: the server is back to the
    threads and open files it had before the flood."""
    server = server_with_open_files(FLOOD_OPEN_FILES)
    url = metrics_url(server)
    baseline = warmed_up_figures(server, url)
    with idle_connections(urllib.parse.urlsplit(url).port, FLOODED):
        during = Figures.of(server.pid)
    files = settled_files(server.pid, baseline.files)

    took = timed_scrape(url)
    assert at_index_7(server.address) == 13
    after = Figures.of(server.pid)
    summary = (f"after a metrics flood x{FLOODED}: before {baseline}; during {during}; "
               f"after {after}; scrape {took * 1000:.1f} ms")
    record(summary)
    assert files == baseline.files, summary
    assert after.threads < baseline.threads + THREAD_GROWTH_BOUND, summary
    assert took < SLOWEST_SCRAPE_BOUND_S, summary


def test_the_metrics_endpoint_outlives_running_out_of_open_files(server_with_open_files):
    """Idle connections to the gRPC port, more than the server may open
    files, take every file it has: the endpoint cannot accept a scrape's
    connection then, and says so once, on stderr. Once they are closed, the
    scrape that waited is answered, and so is every one after: a failed
    accept is waited out, never the end of the endpoint. (The endpoint this
    one replaced stopped accepting for good on its first failed accept.)"""
    limit = EXHAUSTED_OPEN_FILES
    server = server_with_open_files(limit)
    url = metrics_url(server)
    baseline = warmed_up_figures(server, url)
    port = urllib.parse.urlsplit(url).port
    with idle_connections(server.port, 2 * limit):
        deadline = time.monotonic() + STEP_TIMEOUT
        while open_file_count(server.pid) < limit and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_file_count(server.pid) == limit
        # Waits in the listen queue: the endpoint has no file to accept it.
        waiting = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
        assert server.wait_until(lambda: ACCEPT_ERROR in server.stderr(), STEP_TIMEOUT), \
            server.stderr()
    with waiting:
        waiting.sendall(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        answer = waiting.makefile("rb").readline()
    assert answer == b"HTTP/1.1 200 OK\r\n"
    took = timed_scrape(url)
    assert at_index_7(server.address) == 13

    summary = (f"open files exhausted by x{2 * limit} idle gRPC connections (limit {limit}): "
               f"before {baseline}; after {Figures.of(server.pid)}; scrape after {took * 1000:.1f} ms")
    record(summary)
    errors = [line for line in server.stderr().splitlines() if ACCEPT_ERROR in line]
    # One line: the failures that followed it were within the interval
    # between two lines (src/metrics/endpoint.rs, ACCEPT_ERROR_LOG_INTERVAL).
    assert errors == [f"warn: {ACCEPT_ERROR}: Too many open files (os error 24)"], summary
    assert Figures.of(server.pid).threads < baseline.threads + THREAD_GROWTH_BOUND, summary
    assert took < SLOWEST_SCRAPE_BOUND_S, summary


# --------------------------------------------------------------------------
# A real Prometheus


PROMETHEUS = shutil.which("prometheus")

# The queries of docs/running.md ("Metrics"), checked here to be valid PromQL.
DOCUMENTED_QUERIES = [
    'sum by (grpc_method) (rate(grpc_server_handled_total{grpc_service="fibonacci.Fibonacci",'
    'grpc_code!="OK"}[5m])) / sum by (grpc_method) (rate(grpc_server_started_total'
    '{grpc_service="fibonacci.Fibonacci"}[5m]))',
    'histogram_quantile(0.99, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_bucket'
    '{grpc_service="fibonacci.Fibonacci"}[5m])))',
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def query(api: str, promql: str) -> list:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=STEP_TIMEOUT) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scalar(api: str, promql: str) -> float:
    result = query(api, promql)
    assert len(result) == 1, (promql, result)
    return float(result[0]["value"][1])


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus for one test: `start(target)` scrapes `target`
    (host:port) every second; returns its API's base URL."""
    if PROMETHEUS is None:
        pytest.skip("Prometheus is not installed: `apt-get install prometheus` "
                    "(.ci/run installs it when it runs as root)")
    started = []

    def start(target: str) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: fibonacci\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        port = free_port()
        process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "prometheus.log", "w"),
        )
        started.append(process)
        api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                if query(api, 'up{job="fibonacci"}') and scalar(api, 'up{job="fibonacci"}') == 1:
                    return api
            except (urllib.error.URLError, ConnectionError):
                pass
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=STEP_TIMEOUT)


def test_prometheus_scrapes_the_counters(fresh_server, prometheus):
    server = fresh_server("rust", "--metrics-port", "0")
    url = metrics_url(server)
    api = prometheus(urllib.parse.urlsplit(url).netloc)

    counts = make_known_calls(server.address)
    wait_until_idle(url)
    expected_started = sum(counts["started"].values())
    # Two scrapes after the calls are over: the last one holds them all.
    deadline = time.monotonic() + STEP_TIMEOUT
    while scalar(api, "sum(grpc_server_started_total)") != expected_started:
        assert time.monotonic() < deadline, "Prometheus never saw the calls"
        time.sleep(0.2)

    expected = expected_series(counts)
    for (metric, key), value in expected.items():
        if metric == "grpc_server_handling_seconds_count":
            continue
        labels = dict(zip(("grpc_type", "grpc_service", "grpc_method", "grpc_code"), key))
        selector = ",".join(f'{name}="{label}"' for name, label in labels.items())
        assert scalar(api, f"{metric}{{{selector}}}") == value, (metric, key)

    by_code = {
        item["metric"]["grpc_code"]: float(item["value"][1])
        for item in query(api, 'sum by (grpc_code) (grpc_server_handled_total'
                               '{grpc_service="fibonacci.Fibonacci"}) > 0')
    }
    assert by_code == {"OK": 6, "InvalidArgument": 1, "OutOfRange": 2}
    for promql in DOCUMENTED_QUERIES:
        query(api, promql)
