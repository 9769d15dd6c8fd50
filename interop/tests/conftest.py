"""Shared support for the interop suite.

The servers (the Rust binary and the guide's Python server) run as real
processes on 127.0.0.1 with a port the system picks; the clients (the four
Rust binaries and the guide's four Python clients) run in a pseudo-terminal
and are typed at the way a person would: each input only once its prompt is
on the screen. Every process a test starts is stopped by the test.
"""

import os
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pexpect
import pytest

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


# --------------------------------------------------------------------------
# Servers

LISTENING = re.compile(r"listening on (127\.0\.0\.1:(\d+))(?: \(.*\))?")


class ServerProcess:
    """A server process that has printed `listening on HOST:PORT` (the Rust
    server adds a note in parentheses, e.g. "(plaintext, fibonacci-grpc
    0.2.0, gRPC C core 1.85.1)"). Its stdout is read to the end on a thread of its own, so a
    chatty server never blocks on a full pipe; `stdout_lines` keeps it."""

    def __init__(self, name: str, argv: List[str], cwd: Path):
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True,
        )
        self.stdout_lines: List[str] = []
        self._listening = threading.Event()
        self.address = None
        self.port = None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not self._listening.wait(STEP_TIMEOUT) or self.address is None:
            stdout, stderr = list(self.stdout_lines), self.stderr_text()
            self.stop()
            raise RuntimeError(f"the {name} server did not print `listening on`; "
                               f"stdout: {stdout!r}; stderr: {stderr}")

    def _read_stdout(self):
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.stdout_lines.append(line)
            match = LISTENING.fullmatch(line)
            if match and self.address is None:
                self.address = match.group(1)
                self.port = int(match.group(2))
                self._listening.set()
        self._listening.set()  # stdout closed: the server has gone

    def stderr_text(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def rust_binary(name: str) -> Path:
    path = BIN_DIR / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build the Rust binaries first (make build), "
                    "or point FIB_BIN_DIR at them")
    return path


def start_server(implementation: str, *rust_args: str) -> ServerProcess:
    """The Rust server (with `rust_args` after its address flags) or the
    guide's Python server, on 127.0.0.1 and a port the system picks."""
    if implementation == "rust":
        argv = [str(rust_binary("server")), "--host", "127.0.0.1", "--port", "0", *rust_args]
        return ServerProcess("rust", argv, REPO)
    assert not rust_args, "the guide's server takes no flags"
    argv = [sys.executable, str(PYTHON_DIR / "server.py"), "127.0.0.1:0"]
    return ServerProcess("python", argv, PYTHON_DIR)


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

