"""The soak test (`make soak`; not part of `make test`): the Rust server
under a steady load of all four methods from many connections for 10
minutes, every answer checked, while the HTTP/2 abuse clients of
tests/http2_attacker.py take turns against it.

Prints, per minute: calls made, wrong answers, errors by code, p50/p99
latency, and the server's RSS at the end of the minute, when no attack is
running (each minute's attack runs from its 10th to its 30th second);
then the totals. Fails (exit 1) on any wrong answer, on any error of the
well-behaved clients, or when the server's RSS after the first minute is
not flat (every minute from the second within FLAT_BOUND of the second's).

    .venv/bin/python interop/soak.py [--seconds 600] [--rate 400]

Everything is on loopback, bounded in time, and stops by itself.
"""

import argparse
import collections
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent / "tests"
sys.path.insert(0, str(TESTS))

import grpc  # noqa: E402

from expected import FIB  # noqa: E402 (F(0)..F(46), the oracle every answer is checked against)
from harness.procfs import resident_bytes  # noqa: E402
from harness.servers import Server, rust_server_argv  # noqa: E402
from harness.stubs import import_stubs  # noqa: E402

fibonacci_pb2, fibonacci_pb2_grpc = import_stubs()

ATTACKER = TESTS / "http2_attacker.py"
ATTACKS = ["rapid-reset", "stream-flood", "continuation-flood", "hpack-bomb", "ping-flood",
           "settings-flood", "empty-data-flood", "zero-window", "never-read", "churn"]
FLAT_BOUND = 16 * 2**20


class Tally:
    """What the clients saw in one minute."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.wrong = 0
        self.errors = collections.Counter()

    def record(self, seconds=None, wrong=False, error=None):
        with self.lock:
            if error is not None:
                self.errors[error] += 1
            elif wrong:
                self.wrong += 1
            else:
                self.latencies.append(seconds)


def one_call(stub, kind: int):
    """One call of each kind in turn, with the guide's shapes; whether the
    answer was right."""
    number = fibonacci_pb2.Number
    if kind == 0:
        return stub.AtIndex(number(value=46), timeout=10).value == FIB[46]
    if kind == 1:
        return [r.value for r in stub.GetSequence(number(value=46), timeout=10)] == FIB[1:47]
    if kind == 2:
        return stub.SumIndicies(iter([number(value=7), number(value=5)]), timeout=10).value == 18
    replies = stub.StreamSequence(iter([number(value=v) for v in (4, 2, 1)]), timeout=10)
    return [r.value for r in replies] == FIB[1:8]


def client(address: str, rate: float, stop: threading.Event, minute: list):
    """Calls at `rate` per second, the four kinds in turn, on a channel of
    its own, into the tally of the current minute."""
    with grpc.insecure_channel(address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        interval, kind, due = 1.0 / rate, 0, time.monotonic()
        while not stop.is_set():
            due += interval
            started = time.monotonic()
            tally = minute[0]
            try:
                right = one_call(stub, kind)
                tally.record(time.monotonic() - started, wrong=not right)
            except grpc.RpcError as error:
                tally.record(error=error.code().name)
            kind = (kind + 1) % 4
            time.sleep(max(0.0, due - time.monotonic()))


def attacks(port: int, started: float, stop: threading.Event, log: list):
    """The abuse clients, one a minute, each from the minute's 10th second
    to its 30th."""
    index = 0
    while not stop.wait(max(0.0, started + 60 * index + 10 - time.monotonic())):
        attack = ATTACKS[index % len(ATTACKS)]
        index += 1
        connections = "1" if attack == "churn" else "4"
        result = subprocess.run(
            [sys.executable, str(ATTACKER), attack, "--port", str(port), "--connections",
             connections, "--seconds", "20"], capture_output=True, text=True, timeout=120)
        log.append((attack, result.returncode, result.stdout.strip() or result.stderr.strip()[-200:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    # Well inside what the Python clients (one process, one GIL) can send on
    # a 2-core machine that also runs the server and the attacker.
    parser.add_argument("--rate", type=float, default=200, help="calls per second in all")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    server = Server(rust_server_argv()).require_started()
    pid = server.process.pid
    stop = threading.Event()
    minute = [Tally()]
    threads = [threading.Thread(target=client, daemon=True,
                                args=(server.address, args.rate / args.connections, stop, minute))
               for _ in range(args.connections)]
    attack_log = []
    started = time.monotonic()
    threads.append(threading.Thread(target=attacks, args=(server.port, started, stop, attack_log),
                                    daemon=True))
    for thread in threads:
        thread.start()

    rows = []
    print("minute  calls  wrong  errors                   p50 ms  p99 ms  RSS MiB", flush=True)
    try:
        for number in range(1, args.seconds // 60 + 1):
            time.sleep(max(0.0, started + 60 * number - time.monotonic()))
            tally, minute[0] = minute[0], Tally()
            rss = resident_bytes(pid)
            ordered = sorted(tally.latencies) or [0.0]
            p50 = statistics.median(ordered) * 1000
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
            errors = dict(tally.errors)
            rows.append((number, len(tally.latencies), tally.wrong, errors, p50, p99, rss))
            print(f"{number:6}  {len(tally.latencies):5}  {tally.wrong:5}  {str(errors):24} "
                  f"{p50:6.1f}  {p99:6.1f}  {rss / 2**20:7.1f}", flush=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        server.stop()

    calls = sum(row[1] for row in rows)
    wrong = sum(row[2] for row in rows)
    errors = collections.Counter()
    for row in rows:
        errors.update(row[3])
    after_first = [row[6] for row in rows[1:]]
    drift = max(after_first, default=0) - min(after_first, default=0)
    print(f"total: {calls} calls, {wrong} wrong, errors {dict(errors)}, "
          f"RSS from minute 2 on within {drift / 2**20:.1f} MiB")
    for attack, code, report in attack_log:
        print(f"attack {attack}: exit {code}, {report}")
    failed = wrong > 0 or errors or drift > FLAT_BOUND or len(rows) < 2
    print("soak: FAILED" if failed else "soak: passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
