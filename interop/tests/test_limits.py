"""The limits that keep one client from starving the others: the maximum
message size, compressed or not, and the concurrent streams per
connection."""

import json
import subprocess
import threading
import time
import zlib
from typing import Callable

import grpc
import pytest

import fibonacci_pb2_grpc

from harness.paths import rust_binary
from harness.servers import AT_INDEX, STEP_TIMEOUT
from harness.procfs import resident_bytes
from harness.wire import grpc_frame, varint
from conftest import at_index, code_of, open_stream_sequence
from http2_attacker import Connection, grpc_request


def number_7_padded_to(size: int) -> bytes:
    """Number{value: 7} plus an unknown length-delimited field 2, `size`
    bytes in all on the wire. The server skips the unknown field, so the
    answer is F(7) whenever the size is allowed."""
    head = b"\x08\x07\x12"
    for length in range(size, -1, -1):
        message = head + varint(length) + b"x" * length
        if len(message) == size:
            return message
    raise ValueError(size)


def raw_at_index(channel):
    return channel.unary_unary(AT_INDEX)  # bytes in, bytes out


def test_max_message_size_64(launch):
    server = launch("--max-message-size", "64")
    oversized = b"\x08\x07" + b"\x12" + varint(1000) + b"x" * 1000
    with grpc.insecure_channel(server.address) as channel:
        call = raw_at_index(channel)
        assert code_of(lambda: call(oversized, timeout=STEP_TIMEOUT)) is grpc.StatusCode.RESOURCE_EXHAUSTED
        # The limit is inclusive: 64 bytes pass, 65 do not.
        assert call(number_7_padded_to(64), timeout=STEP_TIMEOUT) == b"\x08\x0d"
        assert code_of(lambda: call(number_7_padded_to(65), timeout=STEP_TIMEOUT)) is grpc.StatusCode.RESOURCE_EXHAUSTED
        # The same channel goes on working.
        assert at_index(channel, 7) == 13
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
    assert server.stderr() == ""


def test_default_max_message_size_is_64_kib(launch):
    server = launch()
    with grpc.insecure_channel(server.address) as channel:
        call = raw_at_index(channel)
        assert call(number_7_padded_to(65536), timeout=STEP_TIMEOUT) == b"\x08\x0d"
        assert code_of(lambda: call(number_7_padded_to(65537), timeout=STEP_TIMEOUT)) is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert at_index(channel, 7) == 13
    assert server.stderr() == ""


@pytest.mark.parametrize("window_kib", ["8", "0"])
def test_a_request_larger_than_the_stream_window_arrives_whole(launch, window_kib):
    """A request of 1 MiB through a window of 8 KiB (128 window updates)
    and through the core's own growing window (--stream-window-kib 0)."""
    server = launch("--stream-window-kib", window_kib, "--max-message-size", str(1 << 20))
    with grpc.insecure_channel(server.address) as channel:
        call = raw_at_index(channel)
        for _ in range(3):
            assert call(number_7_padded_to(1 << 20), timeout=STEP_TIMEOUT) == b"\x08\x0d"
    assert server.stderr() == ""


def rpc_error_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


@pytest.mark.parametrize("method,kind,valid_request", [
    ("/fibonacci.Fibonacci/AtIndex", "unary_unary", b"\x08\x07"),
    ("/fibonacci.Fibonacci/GetSequence", "unary_stream", b"\x08\x07"),
    ("/fibonacci.Fibonacci/SumIndicies", "stream_unary", b"\x08\x07"),
    ("/fibonacci.Fibonacci/StreamSequence", "stream_stream", b"\x08\x01"),
    ("/grpc.health.v1.Health/Check", "unary_unary", b""),
    ("/grpc.health.v1.Health/Watch", "unary_stream", b""),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "stream_stream", b"\x3a\x00"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream_stream", b"\x3a\x00"),
])
def test_every_method_refuses_a_request_past_the_limit(launch, method, kind, valid_request):
    """The C core checks the receive limit for every method the server
    serves (the transport, on each message's length prefix): exact code and
    the core's wording, the same as Python's grpcio server gives. In a
    bidirectional stream, the valid request sent before the oversized one
    is answered first."""
    server = launch("--max-message-size", "64")
    oversized = number_7_padded_to(65)
    with grpc.insecure_channel(server.address) as channel:
        call = getattr(channel, kind)(method)
        streams_requests, streams_replies = kind.startswith("stream"), kind.endswith("_stream")
        received = []
        first_reply = threading.Event()

        def requests():
            yield valid_request
            if streams_replies:
                # The oversized request only once the first is answered:
                # the core refuses it as it arrives, which would otherwise
                # race the handler's reply.
                first_reply.wait(STEP_TIMEOUT)
            yield oversized

        def collect(replies):
            for reply in replies:
                received.append(reply)
                first_reply.set()

        request = requests() if streams_requests else oversized
        if streams_replies:
            error = rpc_error_of(lambda: collect(call(request, timeout=STEP_TIMEOUT)))
        else:
            error = rpc_error_of(lambda: call(request, timeout=STEP_TIMEOUT))
        assert len(received) == (1 if streams_requests and streams_replies else 0), received
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == "SERVER: Received message larger than max (65 vs. 64)"
        assert at_index(channel, 7) == 13
    assert server.stderr() == ""


def test_max_concurrent_streams_per_connection(launch):
    """With --max-concurrent-streams 2, a connection with two calls open
    holds a third until one of them ends (HTTP/2 makes the client wait; it
    is not an error)."""
    server = launch("--max-concurrent-streams", "2")
    with grpc.insecure_channel(server.address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        first, first_responses = open_stream_sequence(stub)
        second, second_responses = open_stream_sequence(stub)
        for requests, responses in ((first, first_responses), (second, second_responses)):
            requests.put(1)
            assert next(responses).value == 1
        assert code_of(lambda: at_index(channel, 7, timeout=1)) is grpc.StatusCode.DEADLINE_EXCEEDED
        first.put(None)
        assert list(first_responses) == []
        assert at_index(channel, 7) == 13
        second.put(None)
        assert list(second_responses) == []
    # A second connection has its own two streams.
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13


def test_calls_past_the_stream_limit_wait_and_none_is_refused(launch):
    """The project's load generator keeps 512 AtIndex calls in flight over 2
    connections, past the default limit of 100 streams a connection: the
    client keeps to the limit and holds the rest, and not one call fails.
    Before the server gave the core headroom for the stream objects of
    finished calls not yet freed (grpc.http2.max_deallocating_streams),
    about one call in five was refused (REFUSED_STREAM) here."""
    server = launch()
    result = subprocess.run(
        [str(rust_binary("bench")), "--address", server.address, "--channels", "2",
         "--in-flight", "512", "--warmup", "0.5", "--duration", "2", "--json"],
        capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["errors"], report.get("first_error")) == (0, None), report
    assert report["calls"] >= 1_000, report
    assert server.stderr() == ""


def test_operational_flags_are_accepted(launch):
    """Keepalive and memory quota have no effect a test can see in a few
    seconds; the server at least takes them and serves."""
    server = launch("--keepalive-time", "30", "--keepalive-timeout", "10", "--memory-quota-mib", "64",
                    "--max-concurrent-streams", "100", "--max-message-size", "4096", "--log", "info")
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13


def test_help_names_every_flag():
    result = subprocess.run([str(rust_binary("server")), "--help"], capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--grace-period", "--reuse-port", "--tls-cert", "--tls-key",
                 "--tls-client-ca", "--log", "--max-concurrent-streams", "--max-message-size",
                 "--keepalive-time", "--keepalive-timeout", "--memory-quota-mib", "--stream-window-kib"):
        assert flag in result.stdout, flag
    client = subprocess.run([str(rust_binary("client_unary")), "--help"], capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert client.returncode == 0
    for flag in ("--connect-timeout", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"):
        assert flag in client.stdout, flag


# --------------------------------------------------------------------------
# Compressed requests: the limit is on the message once inflated, and the
# server never inflates past it (a decompression bomb is refused as it
# inflates, with what it takes of memory bounded by the limit).

# What one refused request may leave the server holding: far less than
# the 64 MiB the bomb inflates to.
ONE_REQUEST_GROWTH_BOUND = 16 * 2**20


def compress(algorithm: str, data: bytes) -> bytes:
    """`data` as gRPC's gzip or deflate (zlib's format) carries it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31 if algorithm == "gzip" else 15)
    return compressor.compress(data) + compressor.flush()

def test_compressed_requests_under_the_limit_are_answered(launch):
    """From Python grpcio with gzip: a message that inflates to exactly the
    limit is answered (grpcio sends it compressed: 64 KiB of one letter is
    about 100 bytes of gzip)."""
    server = launch("--max-message-size", "65536")
    with grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip) as channel:
        call = raw_at_index(channel)
        assert call(number_7_padded_to(65536), timeout=STEP_TIMEOUT) == b"\x08\x0d"
        assert at_index(channel, 7) == 13
    assert server.stderr() == ""


@pytest.mark.parametrize("inflated, details", [
    (65537, "SERVER: Received message larger than max (65537 vs. 65536)"),
    (64 << 20, "Decompressed message larger than max"),
])
def test_compressed_requests_past_the_limit_are_refused(launch, inflated, details):
    """Just past the limit, and a bomb of 64 MiB in about 64 kB of gzip
    (under the limit on the wire): RESOURCE_EXHAUSTED, in the C core's
    words, and the server holds no more than about the limit for it. The
    core inflates in blocks of 1 KiB and refuses a bomb as it inflates; a
    message within a block past the limit is inflated whole and refused by
    the server as it is decoded (src/inbound.rs), in the same words."""
    server = launch("--max-message-size", "65536")
    baseline = resident_bytes(server.process.pid)
    with grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip) as channel:
        call = raw_at_index(channel)
        error = rpc_error_of(lambda: call(number_7_padded_to(inflated), timeout=STEP_TIMEOUT))
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == details
        assert at_index(channel, 7) == 13
    assert resident_bytes(server.process.pid) - baseline < ONE_REQUEST_GROWTH_BOUND
    assert server.stderr() == ""


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_raw_http2_compressed_request_under_the_limit(launch, algorithm, tmp_path):
    """The same from raw HTTP/2, for each algorithm the server accepts: a
    compressed AtIndex(7) padded to 60,000 bytes inflated is answered
    F(7), its reply uncompressed (the client asked for no encoding back)."""
    server = launch("--max-message-size", "65536")
    conn = Connection(server.port, deadline=time.monotonic() + STEP_TIMEOUT)
    conn.keep_replies = True
    compressed = compress(algorithm, number_7_padded_to(60_000))
    block, _ = grpc_request(AT_INDEX, server.address, b"",
                            extra_headers=[("grpc-encoding", algorithm)])
    stream_id = conn.open_stream(block)
    conn.send_data(stream_id, b"\x01" + len(compressed).to_bytes(4, "big") + compressed)
    while not conn.statuses and time.monotonic() < conn.deadline:
        assert conn.answer()
        time.sleep(0.01)
    conn.close()
    assert dict(conn.statuses) == {0: 1}
    assert bytes(conn.replies) == grpc_frame(b"\x08\x0d")


# --------------------------------------------------------------------------
# Keepalive: a peer that stops answering is dropped, not kept forever.

STREAM_SEQUENCE = "/fibonacci.Fibonacci/StreamSequence"
# Far past the two seconds the drop takes: the test fails, not hangs.
KEEPALIVE_WAIT_S = 10


def test_keepalive_drops_a_connection_whose_peer_stops_answering(launch):
    """With --keepalive-time 1 --keepalive-timeout 1, a client that holds a
    call open (StreamSequence, no request yet) and acknowledges the
    server's SETTINGS but never its PINGs is sent a keepalive PING after a
    second of quiet and dropped (GOAWAY, then the socket closed) a second
    after that: a dead peer cannot hold a connection and its calls."""
    server = launch("--keepalive-time", "1", "--keepalive-timeout", "1")
    block, _ = grpc_request(STREAM_SEQUENCE, server.address, b"")
    conn = Connection(server.port, deadline=time.monotonic() + KEEPALIVE_WAIT_S,
                      acks_pings=False)
    conn.open_stream(block)
    started = time.monotonic()
    while conn.answer() and time.monotonic() < conn.deadline:
        time.sleep(0.01)
    dropped_after = time.monotonic() - started
    conn.close()
    assert conn.pings == 1
    assert conn.goaways == 1
    # Two seconds of keepalive (time, then timeout), with a second of
    # timer slack either way.
    assert 1.0 < dropped_after < 3.0, dropped_after
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
