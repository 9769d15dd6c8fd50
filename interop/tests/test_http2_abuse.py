"""HTTP/2 abuse against the Rust server, measured from a well-behaved client.

A raw HTTP/2 attacker (http2_attacker.py, a process of its own) runs each
of its attacks against a fresh server while a grpcio client calls
AtIndex(7) in a loop: rapid reset from one and from eight connections,
streams past MAX_CONCURRENT_STREAMS never finished, a CONTINUATION flood,
headers of 1 MiB, PING and SETTINGS floods from a client that never
reads, empty DATA frames without end, a zero window with many
GetSequence(46) streams, a socket that is never read, connections opened
and reset by the thousand, decompression bombs (gzip and deflate), the
MadeYouReset frames (WINDOW_UPDATE of 0, DATA after END_STREAM, DATA past
the window), requests whose deadline has passed on arrival, and 1 MiB
requests sent a byte a frame. What must hold is what a user of the server
would notice: every call of the well-behaved client is answered, and
answered right; its p99 latency stays under 250 ms and no call takes a
second; the server's resident memory grows by less than 64 MB at the
peak and is back within 16 MB of where it began 10 s after the attack;
the same bounds for every attack; and the server still
answers afterwards. Where every request must get the same answer, every
answer the attacker decoded is that one.

An attack marked open_issue is one the server does not hold yet
(docs/hardening.md, "Open"; none today); make test leaves it out.

All traffic is on loopback, and every attack is bounded in streams and
seconds.
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

import fibonacci_pb2
import fibonacci_pb2_grpc
from harness.procfs import resident_bytes
from harness.servers import STEP_TIMEOUT
from conftest import record

ATTACKER = Path(__file__).resolve().parent / "http2_attacker.py"

P99_BOUND_S = 0.250
# No call of the well-behaved client may stall for long either: a server
# that answers most calls fast but makes some wait a second has failed its
# users (the PING flood did, before the server turned off ping strikes).
SLOWEST_BOUND_S = 1.0
ATTACK_S = 6
PEAK_GROWTH_BOUND = 64 * 2**20
SETTLED_BOUND = 16 * 2**20
SETTLE_S = 10.0
MAX_STREAMS = 5_000_000


class WellBehavedClient:
    """Calls AtIndex(7) back to back on one channel, on a thread, and
    records every call's latency and result."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.stub = fibonacci_pb2_grpc.FibonacciStub(self.channel)
        self.latencies = []
        self.wrong = []
        self.errors = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                reply = self.stub.AtIndex(fibonacci_pb2.Number(value=7), timeout=5)
            except grpc.RpcError as error:
                self.errors.append(f"{error.code().name}: {error.details()}")
                continue
            self.latencies.append(time.monotonic() - started)
            if reply.value != 13:
                self.wrong.append(reply.value)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(STEP_TIMEOUT)
        self.channel.close()

    def p99(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def sample_rss_while(pid: int, process: subprocess.Popen) -> int:
    """The server's peak resident memory while `process` runs."""
    peak = resident_bytes(pid)
    while process.poll() is None:
        peak = max(peak, resident_bytes(pid))
        time.sleep(0.05)
    return max(peak, resident_bytes(pid))


def settled_rss(pid: int, baseline: int) -> int:
    """The server's resident memory once back within SETTLED_BOUND of
    `baseline`, or after SETTLE_S, whichever comes first."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        rss = resident_bytes(pid)
        if rss - baseline < SETTLED_BOUND or time.monotonic() > deadline:
            return rss
        time.sleep(0.1)


# What the server answers a request it refuses: its status code and the
# start of its message, for the attacks whose every request it must refuse.
TOO_LARGE = ("8", "SERVER: Received message larger than max")
DECOMPRESSED_TOO_LARGE = ("8", "Decompressed message larger than max")
# A request the server answers: OK, no message.
ANSWERED = ("0", "")
# RST_STREAM codes: after the trailers of a request the server answered
# before reading it whole, and for a stream it refused unprocessed.
NO_ERROR, REFUSED_STREAM = "0", "7"
# A request of 1 MiB sent a byte a frame needs a server that takes it.
ONE_MIB_ALLOWED = ("--max-message-size", str(2 << 20))
# A bomb small enough on the wire to pass the 64 KiB limit (the 5-byte
# prefix and about 61 kB of gzip), so only its inflated size can stop it.
UNDER_THE_WIRE_MIB = "60"


def attack_case(attack, connections, evidence, least, attacker_args=(), server_args=(),
                answer=None, name=None, open_issue=False):
    """One attack of the suite: what runs it (attacker and server flags),
    what shows it really ran (a count in its report and the least it must
    reach) and, where every request must get the same answer, that answer:
    its status code and the start of its message. `open_issue`: the server
    does not hold this one yet (docs/hardening.md, Open); make test
    leaves it out."""
    marks = [pytest.mark.open_issue] if open_issue else []
    return pytest.param(attack, connections, evidence, least, tuple(attacker_args),
                        tuple(server_args), answer,
                        id=f"{name or attack}-{connections}", marks=marks)


# Bounded in frames too, far above what one core sends in its seconds, so
# the time bound is the one that ends each.
ATTACKS = [
    attack_case("rapid-reset", 8, "streams", 10_000),
    attack_case("rapid-reset", 1, "streams", 10_000),
    attack_case("stream-flood", 8, "streams", 10_000),
    attack_case("continuation-flood", 8, "bytes", 10 << 20),
    attack_case("big-header", 8, "bytes", 10 << 20),
    # The HPACK bomb: a 4 kB header referenced 4,000 times a block. Its
    # CPU per byte and its memory are bounded by two core patches
    # (grpc-core/patches/hpack-hard-limit-error-once.patch and
    # header-limit-before-settings-ack.patch); the second is what the
    # client that never acknowledges the server's SETTINGS tests.
    attack_case("hpack-bomb", 8, "streams", 100),
    attack_case("hpack-bomb-unacked", 8, "streams", 100),
    attack_case("ping-flood", 8, "bytes", 1 << 20),
    attack_case("settings-flood", 8, "bytes", 1 << 20),
    attack_case("empty-data-flood", 8, "bytes", 1 << 20),
    attack_case("zero-window", 8, "streams", 1_000),
    attack_case("never-read", 8, "streams", 100),
    attack_case("churn", 1, "connections_opened", 1_000),
    # Decompression bombs: 256 MiB of zeros in about 255 kB of gzip or
    # deflate, refused by the size on the wire; 60 MiB in about 61 kB,
    # under the limit on the wire, refused as it inflates past the limit.
    attack_case("gzip-bomb", 1, "streams", 500, answer=TOO_LARGE),
    attack_case("gzip-bomb", 8, "streams", 500, answer=TOO_LARGE),
    attack_case("deflate-bomb", 8, "streams", 500, answer=TOO_LARGE),
    attack_case("gzip-bomb", 1, "streams", 500, ["--inflated-mib", UNDER_THE_WIRE_MIB],
                answer=DECOMPRESSED_TOO_LARGE, name="gzip-bomb-60mib"),
    attack_case("gzip-bomb", 8, "streams", 500, ["--inflated-mib", UNDER_THE_WIRE_MIB],
                answer=DECOMPRESSED_TOO_LARGE, name="gzip-bomb-60mib"),
    attack_case("deflate-bomb", 8, "streams", 500, ["--inflated-mib", UNDER_THE_WIRE_MIB],
                answer=DECOMPRESSED_TOO_LARGE, name="deflate-bomb-60mib"),
    # MadeYouReset (CVE-2025-8671): frames that make the server reset the
    # stream itself, after the handler has started.
    attack_case("window-update-zero", 8, "streams", 10_000),
    attack_case("data-after-end-stream", 8, "streams", 10_000),
    # Each stream first fills its window (32 KiB, --stream-window-kib),
    # then sends a byte past it: with the core's own window (4 MiB and
    # more) a few streams parked tens of megabytes in the server.
    attack_case("data-past-window", 8, "streams", 1_000),
    attack_case("tiny-timeout", 8, "streams", 10_000),
    # A large message in one-byte DATA frames, ten bytes on the wire for
    # each byte of it: the socket stays full, which made the core's reads
    # grow without bound (docs/hardening.md, "Reads that grow without bound").
    attack_case("one-byte-data", 1, "streams", 10, server_args=ONE_MIB_ALLOWED, answer=ANSWERED),
]


@pytest.mark.parametrize("attack, connections, evidence, least, attacker_args, server_args, answer",
                         ATTACKS)
def test_the_server_serves_a_well_behaved_client_through(fresh_server, attack, connections,
                                                         evidence, least, attacker_args,
                                                         server_args, answer):
    server = fresh_server("rust", *server_args)
    pid = server.process.pid
    client = WellBehavedClient(server.address)
    client.start()
    time.sleep(0.5)  # connected and warm before the baseline
    baseline = resident_bytes(pid)
    calls_before = len(client.latencies)

    attacker = subprocess.Popen(
        [sys.executable, str(ATTACKER), attack, "--port", str(server.port),
         "--connections", str(connections), "--seconds", str(ATTACK_S),
         "--max-streams", str(MAX_STREAMS), *attacker_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    peak = sample_rss_while(pid, attacker)
    out, err = attacker.communicate(timeout=STEP_TIMEOUT)
    assert attacker.returncode == 0, err
    report = json.loads(out)
    calls_during = len(client.latencies) - calls_before
    client.stop()
    settled = settled_rss(pid, baseline)

    summary = (f"{attack} x{connections} {' '.join(attacker_args)}: {report}; RSS baseline "
               f"{baseline >> 20} MiB, peak {peak >> 20} MiB, settled {settled >> 20} MiB; client "
               f"{len(client.latencies)} calls ({calls_during} during the attack), "
               f"p99 {client.p99() * 1000:.1f} ms, max {max(client.latencies) * 1000:.1f} ms, "
               f"errors {client.errors[:3]}")
    record(summary, peak=peak - baseline, slowest=max(client.latencies))
    assert report[evidence] >= least, summary  # the attack really ran
    assert client.errors == [], summary
    assert client.wrong == [], summary
    assert calls_during > 0, summary
    assert client.p99() < P99_BOUND_S, summary
    assert max(client.latencies) < SLOWEST_BOUND_S, summary
    assert peak - baseline < PEAK_GROWTH_BOUND, summary
    assert settled - baseline < SETTLED_BOUND, summary
    if answer:
        # Every request the server answered got this answer, and at least
        # `least` of them did; a stream is otherwise only reset, after the
        # answer's trailers (NO_ERROR) or refused unprocessed, past the
        # streams the server takes at once (REFUSED_STREAM).
        code, message = answer
        assert list(report["statuses"]) == [code], summary
        assert report["statuses"][code] >= least, summary
        assert all(text.startswith(message) for text in report["messages"]), summary
        assert set(report["resets"]) <= {NO_ERROR, REFUSED_STREAM}, summary

    with grpc.insecure_channel(server.address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        assert stub.AtIndex(fibonacci_pb2.Number(value=46), timeout=STEP_TIMEOUT).value == 1836311903


# Idle connections by the thousand (a slow loris): more than a login
# shell's usual soft limit on open files, against a server started with
# that limit.
HOARDED = 2_000
SHELL_OPEN_FILES = 1_024
HOARD_S = 5
# What a second hoard may add to what the first left: the memory the first
# kept is reused, not added to.
REUSED_BOUND = 4 * 2**20


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def steady_rss(pid: int) -> int:
    """The server's resident memory once it has not changed for a second
    (at most SETTLE_S)."""
    deadline = time.monotonic() + SETTLE_S
    rss = resident_bytes(pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = resident_bytes(pid)
        if now == rss:
            break
        rss = now
    return rss


def hoard_round(server) -> dict:
    """One hoard: HOARDED idle connections held for HOARD_S, and, while
    they are held, new clients calling AtIndex(7), each on a connection of
    its own. Returns what the attacker, the server and the clients saw."""
    pid = server.process.pid
    attacker = subprocess.Popen(
        [sys.executable, str(ATTACKER), "hoard", "--port", str(server.port),
         "--connections", str(HOARDED), "--seconds", str(HOARD_S)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + HOARD_S
    # Half the time to open them (they take well under a second), half for
    # the new clients.
    while open_files(pid) < HOARDED and time.monotonic() < deadline - HOARD_S / 2:
        time.sleep(0.05)
    held = open_files(pid)
    latencies, errors = [], []
    while time.monotonic() < deadline - 0.5 and len(latencies) + len(errors) < 20:
        started = time.monotonic()
        try:
            with grpc.insecure_channel(server.address) as channel:
                stub = fibonacci_pb2_grpc.FibonacciStub(channel)
                assert stub.AtIndex(fibonacci_pb2.Number(value=7), timeout=2).value == 13
            latencies.append(time.monotonic() - started)
        except grpc.RpcError as error:
            errors.append(f"{error.code()}: {error.details()}")
        time.sleep(0.1)
    peak = sample_rss_while(pid, attacker)
    out, err = attacker.communicate(timeout=STEP_TIMEOUT)
    assert attacker.returncode == 0, err
    return {"report": json.loads(out), "held": held, "latencies": latencies, "errors": errors,
            "peak": peak, "settled": steady_rss(pid)}


def test_idle_connections_by_the_thousand_leave_room_for_new_clients(launch):
    """2,000 connections that send the preface and SETTINGS and then
    nothing, held open, against a server whose soft limit on open files is
    1,024: new clients still connect and are answered, because the server
    sets its soft limit to what its connection cap (2,048) needs at
    start-up. Left at 1,024, it could accept no one past the idle
    connections, and every new client waited out its deadline.

    Memory: the core keeps the poller's handle of every connection it held
    at once, for reuse, among the pages those connections used, so what
    2,000 connections leave is not handed back; it is reused, and a second
    hoard adds next to nothing to it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < HOARDED + 1_000:
        pytest.skip(f"the hard limit on open files here is {hard}, too low to hold "
                    f"{HOARDED} connections whatever the server does")
    server = launch(open_files=SHELL_OPEN_FILES)
    baseline = resident_bytes(server.process.pid)
    rounds = [hoard_round(server), hoard_round(server)]

    summary = "; ".join(
        f"hoard x{HOARDED} round {number}: {r['report']}; server held {r['held']} open files; RSS "
        f"peak {r['peak'] >> 20} MiB, settled {r['settled'] >> 20} MiB (baseline {baseline >> 20} MiB); "
        f"new clients {len(r['latencies'])} answered, slowest "
        f"{max(r['latencies'], default=0) * 1000:.1f} ms, errors {r['errors'][:3]}"
        for number, r in enumerate(rounds, 1))
    record(summary, peak=max(r["peak"] for r in rounds) - baseline,
           slowest=max(max(r["latencies"], default=0.0) for r in rounds))
    for r in rounds:
        assert r["report"]["connections_opened"] == HOARDED, summary
        assert r["held"] >= HOARDED, summary
        assert r["errors"] == [], summary
        assert len(r["latencies"]) >= 10, summary
        assert max(r["latencies"]) < SLOWEST_BOUND_S, summary
        assert r["peak"] - baseline < PEAK_GROWTH_BOUND, summary
    assert rounds[1]["settled"] - rounds[0]["settled"] < REUSED_BOUND, summary
