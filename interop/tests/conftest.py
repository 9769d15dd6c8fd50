"""Shared support for the interop suite.

The servers (the Rust binary and the guide's Python server) run as real
processes on 127.0.0.1 with a port the system picks; the clients (the four
Rust binaries and the guide's four Python clients) run in a pseudo-terminal
and are typed at the way a person would: each input only once its prompt is
on the screen. Every process a test starts is stopped by the test.
"""

import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import grpc
import pexpect
import pytest
from grpc_health.v1 import health_pb2

from pki import Pki

INTEROP = Path(__file__).resolve().parent.parent
REPO = INTEROP.parent
PROTO_DIR = REPO / "proto"
PYTHON_DIR = INTEROP / "python"
GENERATED = PYTHON_DIR / "generated"
NODE_DIR = INTEROP / "node"
BIN_DIR = Path(os.environ.get("FIB_BIN_DIR", REPO / "target" / "release"))

# A ceiling for any one step, so a hang fails the test instead of the suite
# (not a performance bound).
STEP_TIMEOUT = 30

MANIFEST = REPO / "deploy" / "kubernetes.yaml"

_PACKAGE = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]
_CORE_RELEASE = next(
    line.split()[0]
    for line in (REPO / "grpc-core" / "release.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
# e.g. "fibonacci-grpc 0.2.0, gRPC C core 1.85.1"
VERSION_TAG = f"{_PACKAGE['name']} {_PACKAGE['version']}, gRPC C core {_CORE_RELEASE}"

FIBONACCI = "fibonacci.Fibonacci"
AT_INDEX = "/fibonacci.Fibonacci/AtIndex"
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICES = {FIBONACCI, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA}

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# `debug: call /fibonacci.Fibonacci/AtIndex from ipv4:127.0.0.1:54321: OK in 57us`
CALL_LINE = re.compile(
    r"debug: call (?P<method>/\S+) from (?P<peer>ipv4:127\.0\.0\.1:\d+): "
    r"(?P<code>[A-Z_]+) in (?P<duration>\d+(?:\.\d+)?(?:ns|us|ms|s))"
)


# The C core's lines, routed through the server's logger.
C_CORE_LINE = re.compile(r"(?:[a-z]+: )?grpc: ")


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


def generate_stubs():
    """fibonacci_pb2*.py from the project's own proto, into python/generated/."""
    from grpc_tools import protoc

    GENERATED.mkdir(exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    code = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={GENERATED}",
        f"--grpc_python_out={GENERATED}",
        str(PROTO_DIR / "fibonacci.proto"),
    ])
    if code != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with {code}")


# Generated at test time (nothing generated is checked in), before any test
# module imports the stubs.
generate_stubs()
if str(GENERATED) not in sys.path:
    sys.path.insert(0, str(GENERATED))

import fibonacci_pb2  # noqa: E402 (generated just above)
import fibonacci_pb2_grpc  # noqa: E402


# --------------------------------------------------------------------------
# Servers

def rust_binary(name: str) -> Path:
    path = BIN_DIR / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build the Rust binaries first (make build), "
                    "or point FIB_BIN_DIR at them")
    return path


def server_env(**extra) -> dict:
    """The environment without RUST_LOG (it sets the log level), plus extra."""
    env = {key: value for key, value in os.environ.items() if key != "RUST_LOG"}
    env.update(extra)
    return env


def rust_server_argv(*args: str) -> List[str]:
    """The Rust server's command line: `args`, on 127.0.0.1 and a port the
    system picks unless they say otherwise."""
    argv = [str(rust_binary("server"))]
    if "--host" not in args:
        argv += ["--host", "127.0.0.1"]
    if "--port" not in args:
        argv += ["--port", "0"]
    return argv + list(args)


class Server:
    """A server process: the Rust binary or the guide's Python server. Its
    stdout and stderr are read as they come, by threads, so a chatty server
    never blocks on a full pipe and a test can wait for a line. Once started
    it has printed `listening on HOST:PORT` (the Rust server adds a note in
    parentheses, e.g. "(plaintext, fibonacci-grpc 0.2.0, gRPC C core
    1.85.1)"), or it has exited."""

    def __init__(self, argv: List[str], cwd: Path = REPO, env: Optional[dict] = None):
        self.argv = argv
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env if env is not None else server_env(),
        )
        self._stdout: List[str] = []
        self._stderr: List[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self._stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self._stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.first_line = None
        self.listening_line = None
        self.address = None
        self.port = None
        self.wait_until(lambda: self._listening() or self.process.poll() is not None, STEP_TIMEOUT)
        lines = self.stdout()
        self.first_line = lines[0] if lines else None
        self.listening_line = self._listening()
        if self.listening_line:
            self.address = re.match(r"listening on (\S+)", self.listening_line).group(1)
            self.port = int(self.address.rsplit(":", 1)[1])

    def _listening(self) -> Optional[str]:
        # Found wherever it is, so that the other tests still run when
        # something is printed before it; test_listening_is_the_first_line
        # holds it to being the first line.
        return next((line for line in self._stdout if line.startswith("listening on ")), None)

    def _read(self, stream, sink):
        for line in stream:
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                # Woken by every line; the timeout also catches a condition
                # that depends on something else (the process's exit).
                self._changed.wait(min(left, 0.05))
        return True

    def require_started(self):
        assert self.address is not None, (
            f"{self.argv} printed no `listening on` line: {self.stdout()!r}; stderr: {self.stderr()!r}")
        return self

    def stdout(self) -> List[str]:
        with self._changed:
            return list(self._stdout)

    def own_lines(self) -> List[str]:
        """stdout without the gRPC C core's own log lines (`grpc: ...`,
        `debug: grpc: ...`); test_no_c_core_chatter_at_info checks those
        apart."""
        return [line for line in self.stdout() if not C_CORE_LINE.match(line)]

    def stderr(self) -> str:
        with self._changed:
            return "".join(line + "\n" for line in self._stderr)

    def calls(self, method: Optional[str] = None) -> List[re.Match]:
        """The debug lines of finished calls, parsed (all, or one method's)."""
        found = []
        for line in self.stdout():
            match = CALL_LINE.fullmatch(line)
            if match and (method is None or match.group("method") == method):
                found.append(match)
        return found

    def wait_for_line(self, text: str, timeout: float = STEP_TIMEOUT) -> bool:
        return self.wait_until(lambda: text in self._stdout, timeout)

    def wait_for_calls(self, count: int, method: Optional[str] = AT_INDEX, timeout: float = STEP_TIMEOUT) -> bool:
        return self.wait_until(lambda: len(self.calls(method)) >= count, timeout)

    def send(self, sig: int):
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = STEP_TIMEOUT) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(STEP_TIMEOUT)
        return code

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(5)


def start_server(implementation: str, *rust_args: str) -> Server:
    """The Rust server (with `rust_args`) or the guide's Python server, on
    127.0.0.1 and a port the system picks, listening."""
    if implementation == "rust":
        return Server(rust_server_argv(*rust_args)).require_started()
    assert not rust_args, "the guide's server takes no flags"
    argv = [sys.executable, str(PYTHON_DIR / "server.py"), "127.0.0.1:0"]
    return Server(argv, cwd=PYTHON_DIR).require_started()


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

    def start(*args: str, env: Optional[dict] = None, must_start: bool = True) -> Server:
        server = Server(rust_server_argv(*args), env=env)
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


def resident_bytes(pid: int) -> int:
    """A process's resident memory (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


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
# Facts measured by the suite, printed at the end of the run for the README.

MEASUREMENTS: List[str] = []


def record(fact: str):
    MEASUREMENTS.append(fact)
    print(fact)


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("interop measurements")
        for fact in MEASUREMENTS:
            terminalreporter.write_line(fact)

