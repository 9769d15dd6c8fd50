"""Server processes for the interop suite and the benchmarks: the Rust
binary, the guide's Python server (interop/python/server.py) and the
grpc-go and tonic peers (bench/go, bench/tonic), each started on 127.0.0.1
with a port the system picks, known once it prints `listening on
HOST:PORT`."""

import os
import re
import resource
import subprocess
import sys
import threading
import time
from typing import Callable, List, Optional

from harness.paths import BIN_DIR, GO_SERVER, PYTHON_DIR, REPO, TONIC_SERVER, rust_binary

# A ceiling for any one step (a start, an exit), so a hang fails the run
# instead of blocking it (not a performance bound).
STEP_TIMEOUT = 30

# `debug: call /fibonacci.Fibonacci/AtIndex from ipv4:127.0.0.1:54321: OK in 57us`
CALL_LINE = re.compile(
    r"debug: call (?P<method>/\S+) from (?P<peer>ipv4:127\.0\.0\.1:\d+): "
    r"(?P<code>[A-Z_]+) in (?P<duration>\d+(?:\.\d+)?(?:ns|us|ms|s))"
)

# The C core's lines, routed through the server's logger.
C_CORE_LINE = re.compile(r"(?:[a-z]+: )?grpc: ")

AT_INDEX = "/fibonacci.Fibonacci/AtIndex"
LISTENING = "listening on "


def server_env(**extra) -> dict:
    """The environment without RUST_LOG (it sets the log level), plus extra."""
    env = {key: value for key, value in os.environ.items() if key != "RUST_LOG"}
    env.update(extra)
    return env


def rust_server_argv(*args: str, bin_dir: os.PathLike = BIN_DIR) -> List[str]:
    """The Rust server's command line: `args`, on 127.0.0.1 and a port the
    system picks unless they say otherwise."""
    argv = [str(rust_binary("server", bin_dir))]
    if "--host" not in args:
        argv += ["--host", "127.0.0.1"]
    if "--port" not in args:
        argv += ["--port", "0"]
    return argv + list(args)


def python_server_argv(python: str = sys.executable,
                       script: os.PathLike = PYTHON_DIR / "server.py") -> List[str]:
    """The guide's Python server's command line, on 127.0.0.1 and a port
    the system picks (it takes no flags). It imports the generated stubs
    (stubs.py)."""
    return [python, str(script), "127.0.0.1:0"]


def go_server_argv(binary: os.PathLike = GO_SERVER) -> List[str]:
    """The grpc-go peer's command line (bench/go/server.go, built by `make
    bench-go`), on 127.0.0.1 and a port the system picks."""
    return [str(binary), "-addr", "127.0.0.1:0"]


def tonic_server_argv(binary: os.PathLike = TONIC_SERVER) -> List[str]:
    """The tonic peer's command line (bench/tonic, built by `make bench` or
    `make bench-tonic`), on 127.0.0.1 and a port the system picks: the
    grpc-go peer's, flag for flag."""
    return [str(binary), "-addr", "127.0.0.1:0"]


def set_open_files_limits(soft: Optional[int], hard: Optional[int] = None):
    """Sets this process's limits on open files (in a child, before it runs
    the server): the hard one to `hard` if given, else it stays; the soft
    one to `soft` if given (at most the hard one), else to the hard one."""
    if hard is None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft is None or (hard != resource.RLIM_INFINITY and soft > hard):
        soft = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Server:
    """A server process. Its stdout and stderr are read as they come, by
    threads, so a chatty server never blocks on a full pipe and a caller can
    wait for a line. Once constructed it has printed `listening on
    HOST:PORT` (the Rust server adds a note in parentheses, e.g.
    "(plaintext, fibonacci-grpc 0.2.0, gRPC C core 1.85.1)"), or it has
    exited, or STEP_TIMEOUT has passed: `require_started` tells which.

    `name` labels it in the benchmarks' tables; `ready_seconds` is the time
    from exec to its `listening on` line. `open_files` starts it with that
    soft limit on open files, as a login shell often sets it. The Rust
    server raises its soft limit to the hard one at start-up
    (src/open_files.rs); `hard_open_files` lowers the hard one too, so that
    the server runs with at most that many (the soft one is then the same,
    unless `open_files` says otherwise)."""

    def __init__(self, argv: List[str], *, name: str = "server", cwd: os.PathLike = REPO,
                 env: Optional[dict] = None, open_files: Optional[int] = None,
                 hard_open_files: Optional[int] = None):
        self.argv = argv
        self.name = name
        self.ready_seconds: Optional[float] = None
        self._stdout: List[str] = []
        self._stderr: List[str] = []
        self._changed = threading.Condition()
        self._started = time.perf_counter()
        self.process = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env if env is not None else server_env(),
            preexec_fn=(None if open_files is None and hard_open_files is None
                        else lambda: set_open_files_limits(open_files, hard_open_files)),
        )
        self.pid = self.process.pid
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
        return next((line for line in self._stdout if line.startswith(LISTENING)), None)

    def _read(self, stream, sink):
        for line in stream:
            # Timed here, as the line arrives, not when the constructor
            # next looks.
            if sink is self._stdout and self.ready_seconds is None and line.startswith(LISTENING):
                self.ready_seconds = time.perf_counter() - self._started
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

    def require_started(self) -> "Server":
        """This server, if it printed its `listening on` line; otherwise it
        is stopped and the error says what it printed instead."""
        if self.address is None:
            self.stop()
            raise RuntimeError(f"{self.name} ({' '.join(self.argv)}) printed no `listening on` line: "
                               f"{self.stdout()!r}; stderr: {self.stderr()!r}")
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
        """SIGTERM, then SIGKILL if it has not exited after a grace period."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(5)
