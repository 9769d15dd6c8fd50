"""Reflection as a client this project did not write uses it: grpc-requests
(a Python library that builds every call from the server's reflection
service, on v1alpha) lists the services, learns the schema, and calls each
Fibonacci method with JSON-like dicts and no generated code.

grpcurl's sequence of reflection calls is replayed in test_reflection.py
(`test_reflection_answers_grpcurl_sequence`).
"""

import grpc
import pytest
from grpc_requests import Client

from harness.servers import STEP_TIMEOUT

SERVICES = [
    "fibonacci.Fibonacci",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
]


@pytest.fixture(scope="module")
def client(servers):
    client = Client.get_by_endpoint(servers["rust"].address)
    yield client
    client.channel.close()


def test_grpc_requests_sees_every_service(client):
    assert sorted(client.service_names) == SERVICES


def test_grpc_requests_learns_the_method_types(client):
    kinds = {name: meta.method_type.name for name, meta in client.get_methods_meta("fibonacci.Fibonacci").items()}
    assert kinds == {
        "AtIndex": "UNARY_UNARY",
        "GetSequence": "UNARY_STREAM",
        "SumIndicies": "STREAM_UNARY",
        "StreamSequence": "STREAM_STREAM",
    }
    assert client.describe_request("fibonacci.Fibonacci", "AtIndex") == "Number\nFields:\n\tvalue: INT32"


def test_grpc_requests_calls_each_method_from_dicts(client):
    call = lambda method, request: client.request(  # noqa: E731
        "fibonacci.Fibonacci", method, request, timeout=STEP_TIMEOUT)
    assert call("AtIndex", {"value": 7}) == {"value": 13}
    first_five = [{"value": 1}, {"value": 1}, {"value": 2}, {"value": 3}, {"value": 5}]
    assert list(call("GetSequence", {"value": 5})) == first_five
    assert call("SumIndicies", [{"value": 1}, {"value": 2}, {"value": 3}]) == {"value": 4}
    assert list(call("StreamSequence", [{"value": 2}, {"value": 3}])) == first_five
    # proto3's JSON leaves a zero out: {} is Number(value=0).
    assert call("AtIndex", {}) == {}


def test_grpc_requests_sees_the_servers_refusal(client):
    with pytest.raises(grpc.RpcError) as raised:
        client.request("fibonacci.Fibonacci", "AtIndex", {"value": -1}, timeout=STEP_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "index -1 is negative; indices start at 0"
