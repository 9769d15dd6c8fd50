"""The limits that keep one client from starving the others: the maximum
message size and the concurrent streams per connection."""

import subprocess
from typing import Callable

import grpc
import pytest

import fibonacci_pb2_grpc

from harness.paths import rust_binary
from harness.servers import AT_INDEX, STEP_TIMEOUT
from harness.wire import varint
from conftest import at_index, code_of, open_stream_sequence


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
    """The server checks the receive limit itself, as it decodes each
    request (src/inbound.rs), for every method it serves: exact code and
    the C core's own wording. In a stream, the valid request before the
    oversized one is answered first."""
    server = launch("--max-message-size", "64")
    oversized = number_7_padded_to(65)
    with grpc.insecure_channel(server.address) as channel:
        call = getattr(channel, kind)(method)
        streams_requests, streams_replies = kind.startswith("stream"), kind.endswith("_stream")
        request = iter([valid_request, oversized]) if streams_requests else oversized
        received = []
        if streams_replies:
            error = rpc_error_of(lambda: received.extend(call(request, timeout=STEP_TIMEOUT)))
        else:
            error = rpc_error_of(lambda: call(request, timeout=STEP_TIMEOUT))
        # A bidi stream answers the valid request before the refusal.
        assert len(received) == (1 if streams_requests and streams_replies else 0), received
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.details() == "Received message larger than max (65 vs. 64)"
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
                 "--keepalive-time", "--keepalive-timeout", "--memory-quota-mib"):
        assert flag in result.stdout, flag
    client = subprocess.run([str(rust_binary("client_unary")), "--help"], capture_output=True, text=True, timeout=STEP_TIMEOUT)
    assert client.returncode == 0
    for flag in ("--connect-timeout", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"):
        assert flag in client.stdout, flag
