"""The server's log: the start-up line first, one debug line per finished
call, the shutdown lines, and nothing on stderr for a client's mistake."""

import signal
import time

import grpc
import pytest

import fibonacci_pb2
import fibonacci_pb2_grpc

from harness.servers import AT_INDEX, STEP_TIMEOUT, server_env
from conftest import (
    VERSION_TAG,
    accepts_connections,
    at_index,
    code_of,
    open_stream_sequence,
    wait_for,
)


@pytest.mark.parametrize("args", [[], ["--log", "debug"], ["--tls"]], ids=["info", "debug", "tls"])
def test_listening_is_the_first_line(launch, pki, args):
    """Scripts (and this suite's other modules) wait for the first line of
    stdout to be the `listening on` line: nothing may come before it, at any
    log level."""
    if args == ["--tls"]:
        args = ["--tls-cert", pki.server["cert"], "--tls-key", pki.server["key"]]
    server = launch(*args)
    assert server.first_line == server.listening_line, server.stdout()


# The client has its reply before the server has handled the completion of
# the batch that sent it, so a call answered just before SIGTERM may still
# count as in flight: the shutdown report says 0 or 1 drained, both true.
AFTER_ONE_ANSWERED_CALL = {
    "stopped: 0 calls drained, 0 cancelled",
    "stopped: 1 calls drained, 0 cancelled",
}


def test_info_stdout_is_only_the_servers_lines(launch):
    """At the default level an operator's stdout is the server's own lines:
    the start-up line, then the shutdown lines; the gRPC C core's start-up
    chatter (`grpc: grpc epoll fd: 5`, ...) is not info for them."""
    server = launch("--grace-period", "1")
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
    server.send(signal.SIGTERM)
    assert server.wait_exit() == 0
    *lines, stopped = server.stdout()
    assert lines == [
        f"listening on 127.0.0.1:{server.port} (plaintext, {VERSION_TAG})",
        "SIGTERM: shutting down, grace period 1s",
    ]
    assert stopped in AFTER_ONE_ANSWERED_CALL


def test_plaintext_start_line_and_sigterm_lines(launch):
    server = launch("--grace-period", "1")
    assert server.listening_line == f"listening on 127.0.0.1:{server.port} (plaintext, {VERSION_TAG})"
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
    server.send(signal.SIGTERM)
    assert server.wait_exit() == 0
    *lines, stopped = server.own_lines()
    assert lines == [server.listening_line, "SIGTERM: shutting down, grace period 1s"]
    assert stopped in AFTER_ONE_ANSWERED_CALL
    assert server.stderr() == ""


def test_sigint_lines_with_the_default_grace_period(launch):
    server = launch()
    server.send(signal.SIGINT)
    assert server.wait_exit() == 0
    assert server.own_lines() == [
        server.listening_line,
        "SIGINT: shutting down, grace period 5s",
        "stopped: 0 calls drained, 0 cancelled",
    ]
    assert server.stderr() == ""


def test_sigterm_drains_one_call_and_cancels_another(launch):
    """Two StreamSequence calls open when SIGTERM arrives: the one whose
    client finishes within the grace period is drained (and can still be
    answered meanwhile), the other is cancelled when the grace period ends
    (the client sees UNAVAILABLE).
    A new connection is refused from the moment of the signal."""
    # The grace period leaves room for a loaded machine: the steps between
    # the signal and the finishing call's last reply must fit in it.
    server = launch("--grace-period", "5", "--log", "debug")
    with grpc.insecure_channel(server.address) as channel:
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        finishing, finishing_responses = open_stream_sequence(stub)
        lingering, lingering_responses = open_stream_sequence(stub)
        finishing.put(1)
        lingering.put(1)
        assert next(finishing_responses).value == 1
        assert next(lingering_responses).value == 1

        server.send(signal.SIGTERM)
        assert server.wait_for_line("SIGTERM: shutting down, grace period 5s")
        # The listener closes right after that line (a connection made in
        # between gets its calls CANCELLED); from then on a new connection
        # is refused, which a client sees as UNAVAILABLE.
        assert wait_for(lambda: not accepts_connections(server.port), 5), "the listener stayed open"
        # A channel of its own subchannel pool: gRPC Python would otherwise
        # reuse the open connection above, where a new call during shutdown
        # is CANCELLED (GOAWAY) rather than refused.
        with grpc.insecure_channel(
            server.address, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as late:
            assert code_of(lambda: at_index(late, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE
        # The call in flight is still answered, then ends normally.
        finishing.put(2)
        assert [next(finishing_responses).value for _ in range(2)] == [1, 2]
        finishing.put(None)
        assert list(finishing_responses) == []
        assert finishing_responses.code() is grpc.StatusCode.OK

        with pytest.raises(grpc.RpcError) as raised:
            list(lingering_responses)
        # The C core's cancel_all_calls ends it as UNAVAILABLE (which a
        # client may retry elsewhere), not CANCELLED.
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        assert raised.value.details() == "Cancelling all calls"
        lingering.put(None)

    assert server.wait_exit() == 0
    lines = server.own_lines()
    assert lines[-1] == "stopped: 1 calls drained, 1 cancelled", lines
    stream_calls = [m.group("code") for m in server.calls("/fibonacci.Fibonacci/StreamSequence")]
    assert "OK" in stream_calls, lines
    assert server.stderr() == ""


@pytest.mark.parametrize("how", ["--log debug", "RUST_LOG=debug"])
def test_debug_log_one_line_per_call(launch, how):
    if how == "RUST_LOG=debug":
        server = launch(env=server_env(RUST_LOG="debug"))
    else:
        server = launch("--log", "debug")
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
        assert server.wait_for_calls(1)
        assert code_of(lambda: at_index(channel, 47)) is grpc.StatusCode.OUT_OF_RANGE
        assert server.wait_for_calls(2)
        assert code_of(lambda: at_index(channel, -1)) is grpc.StatusCode.INVALID_ARGUMENT
        assert server.wait_for_calls(3)
        stub = fibonacci_pb2_grpc.FibonacciStub(channel)
        assert [n.value for n in stub.GetSequence(fibonacci_pb2.Number(value=3), timeout=STEP_TIMEOUT)] == [1, 1, 2]
        assert server.wait_for_calls(1, "/fibonacci.Fibonacci/GetSequence")
        # Give a stray second line for any call time to show up.
        time.sleep(0.3)

    calls = server.calls(AT_INDEX)
    assert [m.group("code") for m in calls] == ["OK", "OUT_OF_RANGE", "INVALID_ARGUMENT"], server.stdout()
    # One channel, one connection: one peer for all.
    assert len({m.group("peer") for m in calls}) == 1
    assert [m.group("code") for m in server.calls("/fibonacci.Fibonacci/GetSequence")] == ["OK"]
    # Every call line is whole (the regex matched the full line) and nothing
    # reached stderr: a client's bad index is no server error.
    assert server.stderr() == ""


def test_default_log_level_has_no_call_lines(launch):
    server = launch()
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
        assert code_of(lambda: at_index(channel, 47)) is grpc.StatusCode.OUT_OF_RANGE
    time.sleep(0.3)
    assert server.own_lines() == [server.listening_line]
    assert server.stderr() == ""


def test_log_flag_overrides_rust_log(launch):
    server = launch("--log", "info", env=server_env(RUST_LOG="debug"))
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
    time.sleep(0.3)
    assert server.calls() == []
