"""The interop suite's fixtures and client sessions, on the shared harness
(interop/harness: paths, stubs, server processes, /proc).

The servers (the Rust binary and the guide's Python server) run as real
processes on 127.0.0.1 with a port the system picks; the clients (the four
Rust binaries and the guide's four Python clients) run in a pseudo-terminal
and are typed at the way a person would: each input only once its prompt is
on the screen. Every process a test starts is stopped by the test.
"""

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from typing import Callable, List, Optional

import grpc
import pexpect
import pytest
from grpc_health.v1 import health_pb2

from harness.paths import PYTHON_DIR, REPO, rust_binary
from harness.servers import STEP_TIMEOUT, Server, python_server_argv, rust_server_argv, server_env
from harness.stubs import import_stubs
from pki import Pki

MANIFEST = REPO / "deploy" / "kubernetes.yaml"

PACKAGE = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]
_CORE_RELEASE = next(
    line.split()[0]
    for line in (REPO / "grpc-core" / "release.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
# e.g. "fibonacci-grpc 0.2.0, gRPC C core 1.85.1"
VERSION_TAG = f"{PACKAGE['name']} {PACKAGE['version']}, gRPC C core {_CORE_RELEASE}"

FIBONACCI = "fibonacci.Fibonacci"
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICES = {FIBONACCI, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA}

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

PROMPT_INDEX = "enter an index integer: "
PROMPT_SUM = "enter an index (or nothing to stop): "
PROMPT_INCREMENT = "enter the next increment (or nothing to stop): "

KINDS = ("client_unary", "client_server_stream", "client_client_stream", "client_bidirectional_stream")
PROMPTS = {
    "client_unary": PROMPT_INDEX,
    "client_server_stream": PROMPT_INDEX,
    "client_client_stream": PROMPT_SUM,
    "client_bidirectional_stream": PROMPT_INCREMENT,
}

# Generated at test time (nothing generated is checked in), before any test
# module imports the stubs.
fibonacci_pb2, fibonacci_pb2_grpc = import_stubs()


# --------------------------------------------------------------------------
# Servers

def start_server(implementation: str, *rust_args: str) -> Server:
    """The Rust server (with `rust_args`) or the guide's Python server, on
    127.0.0.1 and a port the system picks, listening."""
    if implementation == "rust":
        return Server(rust_server_argv(*rust_args)).require_started()
    assert not rust_args, "the guide's server takes no flags"
    return Server(python_server_argv(), cwd=PYTHON_DIR).require_started()


@pytest.fixture(scope="session")
def servers():
    """One Rust and one Python server for the whole matrix, started lazily."""
    started = {}

    class Servers:
        def __getitem__(self, implementation):
            if implementation not in started:
                started[implementation] = start_server(implementation)
            return started[implementation]

    yield Servers()
    for server in started.values():
        server.stop()


@pytest.fixture
def fresh_server():
    """Starts servers of its own for one test and stops them after it."""
    started = []

    def start(implementation, *rust_args):
        server = start_server(implementation, *rust_args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def launch():
    """Starts servers for one test (`launch("--log", "debug")`) and stops
    every one of them after it."""
    started: List[Server] = []

    def start(*args: str, env: Optional[dict] = None, must_start: bool = True,
              open_files: Optional[int] = None) -> Server:
        server = Server(rust_server_argv(*args), env=env, open_files=open_files)
        started.append(server)
        return server.require_started() if must_start else server

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------
# Clients

@dataclass
class Session:
    """What one client run showed.

    `screen` is the terminal: the prompts, each typed line echoed after its
    prompt, and the lines printed (\\r\\n normalised to \\n). A Python client
    writes everything there, its input() prompts and tracebacks included
    (CPython writes input()'s prompt to stderr on a terminal). A Rust
    client's stderr is captured apart, in `stderr`; a Python client's is
    None.
    """

    screen: str
    stderr: Optional[str]
    exit_code: Optional[int]
    typed: int


def client_argv(implementation: str, kind: str, address: str) -> List[str]:
    if implementation == "rust":
        return [str(rust_binary(kind)), address]
    return [sys.executable, str(PYTHON_DIR / f"{kind}.py"), address]


def run_client(implementation: str, kind: str, address: str, inputs: List[str]) -> Session:
    """Runs one client in a pseudo-terminal and types `inputs`, each only
    once the client's prompt for it is on the screen. If the client exits
    instead of prompting, the remaining inputs are not typed."""
    prompt = PROMPTS[kind]
    argv = client_argv(implementation, kind, address)
    stderr_path = None
    if implementation == "rust":
        handle, stderr_path = tempfile.mkstemp(prefix="fib-client-stderr-")
        os.close(handle)
        argv = ["/bin/sh", "-c", 'f=$1; shift; exec "$@" 2>"$f"', "sh", stderr_path, *argv]
    transcript = []
    typed = 0
    stderr = None
    try:
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(PYTHON_DIR), env=client_environment(),
                              encoding="utf-8", timeout=STEP_TIMEOUT, dimensions=(50, 500))
        child.logfile_read = _Collector(transcript)
        try:
            for line in inputs:
                if child.expect_exact([prompt, pexpect.EOF]) == 1:
                    break
                child.sendline(line)
                typed += 1
            child.expect(pexpect.EOF)
            child.close()
            exit_code = child.exitstatus
        finally:
            if child.isalive():
                child.close(force=True)
    finally:
        if stderr_path:
            with open(stderr_path, encoding="utf-8") as f:
                stderr = f.read()
            os.unlink(stderr_path)
    screen = "".join(transcript).replace("\r\n", "\n")
    return Session(screen=screen, stderr=stderr, exit_code=exit_code, typed=typed)


def client_environment():
    """The environment a person's shell would give a client: Python's usual
    line-buffered output on a terminal (PYTHONUNBUFFERED, if set here, would
    split each printed line into two writes, "text" and "\\n", which two
    threads printing at once can interleave)."""
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    return env


class _Collector:
    def __init__(self, sink):
        self.sink = sink

    def write(self, text):
        self.sink.append(text)

    def flush(self):
        pass


# --------------------------------------------------------------------------
# Helpers of the operations tests

def run_rust_client_piped(kind: str, *args: str, stdin: str = "", timeout: float = STEP_TIMEOUT) -> subprocess.CompletedProcess:
    """A Rust client with its input piped in (so no echo: the prompt is
    followed directly by what is printed next)."""
    return subprocess.run([str(rust_binary(kind)), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=server_env())


def assert_one_error_line(result: subprocess.CompletedProcess, exit_code: int = 1):
    assert result.returncode == exit_code, result
    assert result.stderr.startswith("error: "), result
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result
    assert "Fibonacci #" not in result.stdout, result


def at_index(channel: grpc.Channel, value: int, **kwargs) -> int:
    stub = fibonacci_pb2_grpc.FibonacciStub(channel)
    kwargs.setdefault("timeout", STEP_TIMEOUT)
    return stub.AtIndex(fibonacci_pb2.Number(value=value), **kwargs).value


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def open_stream_sequence(stub):
    """A StreamSequence call whose requests the test feeds one by one."""
    requests: "queue.Queue[Optional[int]]" = queue.Queue()

    def feed():
        while True:
            value = requests.get()
            if value is None:
                return
            yield fibonacci_pb2.Number(value=value)

    responses = stub.StreamSequence(feed(), timeout=STEP_TIMEOUT)
    return requests, responses


UNARY_7 = "enter an index integer: Fibonacci #7: 13\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Certificates made for the tests' TLS servers and clients (pki.py)."""
    return Pki(tmp_path_factory.mktemp("pki"))


# --------------------------------------------------------------------------
# Facts measured by the suite, printed at the end of the run for the documents
# (docs/interop.md, docs/hardening.md).

MEASUREMENTS: List[str] = []


def record(fact: str, **figures):
    """Keeps `fact` for the end of the run's report. With
    INTEROP_FIGURES=path, `figures` (e.g. peak memory, slowest call) are
    also appended to that file as one JSON line under the test's id, for
    tables over many runs."""
    MEASUREMENTS.append(fact)
    print(fact)
    figures_path = os.environ.get("INTEROP_FIGURES")
    if figures_path and figures:
        test_id = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
        with open(figures_path, "a") as figures_file:
            figures_file.write(json.dumps({"test": test_id, **figures}) + "\n")


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("interop measurements")
        for fact in MEASUREMENTS:
            terminalreporter.write_line(fact)

