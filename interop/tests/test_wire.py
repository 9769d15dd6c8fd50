"""The guide's generated Python stub, called directly (no terminal): the
status codes and details each server gives at the int32 edges."""

import queue
import threading

import grpc
import pytest

import fibonacci_pb2
import fibonacci_pb2_grpc
from harness.servers import STEP_TIMEOUT
from expected import (
    COUNT_47,
    FIB,
    INCREMENT_44_3,
    INDEX_47,
    INDEX_NEGATIVE,
    PY_CALL_47,
    PY_CALL_SUM_46_46,
    PY_ITERATING_47,
    SUM_46_46,
)


def Number(value):
    return fibonacci_pb2.Number(value=value)


@pytest.fixture
def rust_stub(servers):
    with grpc.insecure_channel(servers["rust"].address) as channel:
        yield fibonacci_pb2_grpc.FibonacciStub(channel)


@pytest.fixture
def python_stub(servers):
    with grpc.insecure_channel(servers["python"].address) as channel:
        yield fibonacci_pb2_grpc.FibonacciStub(channel)


def status_of(call):
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code(), raised.value.details()


def test_python_stub_sees_out_of_range_from_rust_at_47(rust_stub):
    with pytest.raises(grpc.RpcError) as raised:
        rust_stub.AtIndex(Number(47), timeout=STEP_TIMEOUT)
    assert raised.value.code() is grpc.StatusCode.OUT_OF_RANGE
    assert raised.value.details() == INDEX_47
    # And the server goes on serving.
    assert rust_stub.AtIndex(Number(46), timeout=STEP_TIMEOUT).value == 1836311903


def test_rust_statuses_through_the_python_stub(rust_stub):
    t = STEP_TIMEOUT
    assert status_of(lambda: rust_stub.AtIndex(Number(-1), timeout=t)) == (
        grpc.StatusCode.INVALID_ARGUMENT, INDEX_NEGATIVE)

    received = []

    def get_sequence_47():
        for reply in rust_stub.GetSequence(Number(47), timeout=t):
            received.append(reply.value)

    assert status_of(get_sequence_47) == (grpc.StatusCode.OUT_OF_RANGE, COUNT_47)
    assert received == [], "nothing is streamed before the refusal"

    assert status_of(lambda: rust_stub.SumIndicies(iter([Number(46), Number(46)]), timeout=t)) == (
        grpc.StatusCode.OUT_OF_RANGE, SUM_46_46)
    assert rust_stub.SumIndicies(iter([]), timeout=t).value == 0


def stream_sequence_turns(stub, increments):
    """StreamSequence one increment at a time, as the guide's client uses it:
    returns the values received for each increment and the final status."""
    requests = queue.Queue()

    def request_iterator():
        while (item := requests.get()) is not None:
            yield Number(item)

    responses = stub.StreamSequence(request_iterator(), timeout=STEP_TIMEOUT)
    replies = queue.Queue()

    def read():
        try:
            for reply in responses:
                replies.put(reply.value)
            replies.put(("end", grpc.StatusCode.OK, None))
        except grpc.RpcError as error:
            replies.put(("end", error.code(), error.details()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    turns, status = [], None
    for increment in increments:
        requests.put(increment)
        got = []
        while len(got) < increment:
            item = replies.get(timeout=STEP_TIMEOUT)
            if isinstance(item, tuple):
                status = item[1:]
                break
            got.append(item)
        turns.append(got)
        if status:
            break
    requests.put(None)
    if status is None:
        item = replies.get(timeout=STEP_TIMEOUT)
        assert isinstance(item, tuple), f"a value after the end of the requests: {item}"
        status = item[1:]
    reader.join(STEP_TIMEOUT)
    return turns, status


def test_stream_sequence_refusal_sends_no_value_of_the_refused_request(rust_stub):
    turns, status = stream_sequence_turns(rust_stub, [4, 2, 1])
    assert turns == [FIB[1:5], FIB[5:7], FIB[7:8]]
    assert status == (grpc.StatusCode.OK, None)

    turns, status = stream_sequence_turns(rust_stub, [44, 3])
    assert turns == [FIB[1:45], []]
    assert status == (grpc.StatusCode.OUT_OF_RANGE, INCREMENT_44_3)


def test_guide_server_reports_int32_overflow_as_unknown(python_stub):
    """The reference's behaviour at the same edges, for the table in docs/semantics.md."""
    t = STEP_TIMEOUT
    assert status_of(lambda: python_stub.AtIndex(Number(47), timeout=t)) == (grpc.StatusCode.UNKNOWN, PY_CALL_47)
    assert python_stub.AtIndex(Number(-1), timeout=t).value == 0

    received = []

    def get_sequence_47():
        for reply in python_stub.GetSequence(Number(47), timeout=t):
            received.append(reply.value)

    assert status_of(get_sequence_47) == (grpc.StatusCode.UNKNOWN, PY_ITERATING_47)
    assert received == FIB[1:47]
    assert status_of(lambda: python_stub.SumIndicies(iter([Number(46), Number(46)]), timeout=t)) == (
        grpc.StatusCode.UNKNOWN, PY_CALL_SUM_46_46)

    turns, status = stream_sequence_turns(python_stub, [44, 3])
    assert turns == [FIB[1:45], FIB[45:47]]
    assert status == (grpc.StatusCode.UNKNOWN, PY_ITERATING_47)
