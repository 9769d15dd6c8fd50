"""Connections that do not live for ever: past --max-connection-age the
server asks each client to reconnect (so load spreads onto a replica
added later), and past --max-connection-idle it closes connections with
no call, a hoarder's included. Both with a GOAWAY, so no call fails."""

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import List

import grpc

from harness.procfs import open_file_count
from harness.servers import AT_INDEX, STEP_TIMEOUT
from conftest import at_index, open_stream_sequence, wait_for
import fibonacci_pb2_grpc

ATTACKER = Path(__file__).with_name("http2_attacker.py")

AGE_S = 2
CHANNELS = 16
# A channel of its own for each caller: without it, grpcio shares one
# connection among channels to the same address.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


class Callers:
    """CHANNELS channels, each calling AtIndex(7) in a loop on a thread of
    its own until stopped; every failure and wrong answer kept."""

    def __init__(self, address: str):
        self.channels = [grpc.insecure_channel(address, options=OWN_CONNECTION)
                         for _ in range(CHANNELS)]
        self.answered = 0
        self.failures: List[str] = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=self.call_in_a_loop, args=(channel,))
                        for channel in self.channels]
        for thread in self.threads:
            thread.start()

    def call_in_a_loop(self, channel):
        while self.running:
            try:
                answer = at_index(channel, 7, timeout=STEP_TIMEOUT)
                with self.lock:
                    if answer == 13:
                        self.answered += 1
                    else:
                        self.failures.append(f"AtIndex(7) = {answer}")
            except grpc.RpcError as error:
                with self.lock:
                    self.failures.append(f"{error.code()}: {error.details()}")
            time.sleep(0.02)

    def stop(self):
        self.running = False
        for thread in self.threads:
            thread.join(timeout=STEP_TIMEOUT)
        for channel in self.channels:
            channel.close()


def peers(server, since_line: int = 0) -> Counter:
    """Calls per client connection (its address) in the server's call lines."""
    return Counter(call["peer"] for call in server.calls(AT_INDEX)[since_line:])


def test_connections_past_their_age_move_onto_a_replica_added_later(launch):
    """Two replicas sharing a port (--reuse-port: the kernel picks one per
    new connection, as a Kubernetes Service does), the second started
    after 16 clients have connected to the first. Past their age, every
    first connection is replaced, the replacements spread over both, and
    no call fails, not even a StreamSequence call held open across two
    ages (calls in flight may finish: no grace limit by default)."""
    age = ("--max-connection-age", str(AGE_S), "--log", "debug", "--reuse-port")
    first = launch(*age)
    callers = Callers(first.address)
    stub = fibonacci_pb2_grpc.FibonacciStub(grpc.insecure_channel(first.address))
    requests, responses = open_stream_sequence(stub)
    requests.put(4)
    assert [next(responses).value for _ in range(4)] == [1, 1, 2, 3]
    try:
        assert wait_for(lambda: len(peers(first)) == CHANNELS, timeout=AGE_S / 2)
        original = set(peers(first))
        second = launch(*age, "--port", str(first.port))
        # Two ages and a little: the core varies each age by up to 10%.
        time.sleep(2 * AGE_S * 1.1 + 0.5)
        replaced_by = len(first.calls(AT_INDEX))
        time.sleep(AGE_S * 1.1)
        requests.put(2)
        assert [next(responses).value for _ in range(2)] == [5, 8]
        requests.put(None)
        assert list(responses) == []
    finally:
        callers.stop()

    assert callers.failures == []
    late = peers(first, since_line=replaced_by) + peers(second)
    summary = (f"{callers.answered} calls; first replica's connections {len(peers(first))}, "
               f"second's {len(peers(second))}; the original {CHANNELS}: {sorted(original)}; "
               f"in the last age: {dict(late)}")
    assert len(original) == CHANNELS, summary
    # None of the original connections is used in the last age...
    assert original.isdisjoint(late), summary
    # ...each channel calls on one connection at a time...
    assert len(late) >= CHANNELS, summary
    # ...and the second replica got some of the replacements: at least one
    # of at least 16 new connections, each a coin toss (a 1 in 65,536
    # chance of none; in fact twice as many connections are made).
    assert len(peers(second)) >= 1, summary
    assert sum(peers(first).values()) + sum(peers(second).values()) == callers.answered, summary
    assert first.stderr() == "" and second.stderr() == ""


HOARDED = 200


def test_idle_connections_past_the_idle_limit_are_closed(launch):
    """A hoarder's idle connections (the preface and SETTINGS, then
    nothing: it never reads, so it never answers the server's PING either)
    are closed once idle for --max-connection-idle and the PING's timeout
    (--keepalive-timeout), while a client idle as long reconnects for its
    next call without noticing."""
    server = launch("--max-connection-idle", "1", "--keepalive-timeout", "2", "--log", "debug")
    pid = server.process.pid
    before = open_file_count(pid)
    hoard_s = 12
    attacker = subprocess.Popen(
        [sys.executable, str(ATTACKER), "hoard", "--port", str(server.port),
         "--connections", str(HOARDED), "--seconds", str(hoard_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_for(lambda: open_file_count(pid) >= before + HOARDED, timeout=5), open_file_count(pid)
        started = time.monotonic()
        # Idle for a second, then the PING's two seconds, and slack.
        assert wait_for(lambda: open_file_count(pid) <= before, timeout=6), open_file_count(pid)
        closed_after = time.monotonic() - started
        assert attacker.poll() is None  # the hoarder still holds its end
    finally:
        out, err = attacker.communicate(timeout=hoard_s + STEP_TIMEOUT)
    assert attacker.returncode == 0, err
    assert closed_after > 1.0, closed_after

    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
        # The core looks for idleness once a period, so an idle connection
        # is closed within two periods of its last call.
        time.sleep(2 * 1.0 + 1.0)
        assert at_index(channel, 7) == 13
    assert server.wait_for_calls(2)
    first, second = (call["peer"] for call in server.calls(AT_INDEX))
    assert first != second  # a new connection for the second call
    assert server.stderr() == ""
