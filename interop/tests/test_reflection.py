"""Server reflection, v1 and v1alpha, as Python's grpcio-reflection client
and grpcurl use it: the services listed, the descriptors fetched and used to
call AtIndex with no generated stub, and grpcurl's exact sequence of
questions replayed."""


import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


from harness.servers import AT_INDEX, STEP_TIMEOUT, Server, rust_server_argv
from conftest import FIBONACCI, HEALTH, SERVICES


class V1ReflectionStub:
    """grpcio-reflection 1.85 ships only the v1alpha protocol's stubs. The
    v1 protocol has the same messages, field for field; only the method
    path differs. So the v1alpha messages, sent on the v1 path, are a v1
    client."""

    def __init__(self, channel: grpc.Channel):
        self.ServerReflectionInfo = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


def reflection_stub(channel, version):
    if version == "v1":
        return V1ReflectionStub(channel)
    return reflection_pb2_grpc.ServerReflectionStub(channel)


def reflection_database(channel, version) -> ProtoReflectionDescriptorDatabase:
    database = ProtoReflectionDescriptorDatabase(channel)
    # Its stub is v1alpha; for v1 it gets the v1 method path (see above).
    database._stub = reflection_stub(channel, version)
    return database


def ask(stub, **request) -> reflection_pb2.ServerReflectionResponse:
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]),
                                          timeout=STEP_TIMEOUT)
    answers = list(responses)
    assert len(answers) == 1, answers
    return answers[0]


@pytest.fixture(scope="module")
def reflection_server():
    server = Server(rust_server_argv())
    try:
        yield server.require_started()
    finally:
        server.stop()


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_services_and_calls_at_index_without_stubs(reflection_server, version):
    with grpc.insecure_channel(reflection_server.address) as channel:
        database = reflection_database(channel, version)
        services = list(database.get_services())
        assert sorted(services) == sorted(SERVICES)
        assert len(services) == len(SERVICES)

        pool = descriptor_pool.DescriptorPool(database)
        fibonacci = pool.FindServiceByName(FIBONACCI)
        assert fibonacci.file.name == "fibonacci.proto"
        assert fibonacci.file.package == "fibonacci"
        methods = {m.name: (m.input_type.full_name, m.output_type.full_name,
                            m.client_streaming, m.server_streaming) for m in fibonacci.methods}
        number = "fibonacci.Number"
        assert methods == {
            "AtIndex": (number, number, False, False),
            "GetSequence": (number, number, False, True),
            "SumIndicies": (number, number, True, False),
            "StreamSequence": (number, number, True, True),
        }
        number_descriptor = pool.FindMessageTypeByName(number)
        assert [(f.name, f.number, f.type) for f in number_descriptor.fields] == [
            ("value", 1, number_descriptor.fields[0].TYPE_INT32)]

        health = pool.FindServiceByName(HEALTH)
        assert health.file.name == "grpc/health/v1/health.proto"
        assert sorted(m.name for m in health.methods) == ["Check", "Watch"]

        # The schema, not a generated stub, makes the message and the call.
        Number = message_factory.GetMessageClass(number_descriptor)
        call = channel.unary_unary(AT_INDEX, request_serializer=Number.SerializeToString,
                                   response_deserializer=Number.FromString)
        assert call(Number(value=7), timeout=STEP_TIMEOUT).value == 13
        with pytest.raises(grpc.RpcError) as raised:
            call(Number(value=47), timeout=STEP_TIMEOUT)
        assert raised.value.code() is grpc.StatusCode.OUT_OF_RANGE

        with pytest.raises(KeyError):
            database.FindFileContainingSymbol("fibonacci.NoSuchThing")


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_requests_one_by_one(reflection_server, version):
    with grpc.insecure_channel(reflection_server.address) as channel:
        stub = reflection_stub(channel, version)

        def first_file(response):
            assert response.WhichOneof("message_response") == "file_descriptor_response", response
            files = [descriptor_pb2_file(raw) for raw in response.file_descriptor_response.file_descriptor_proto]
            assert files, response
            return files[0]

        assert first_file(ask(stub, file_by_filename="fibonacci.proto")).name == "fibonacci.proto"
        health_file = first_file(ask(stub, file_by_filename="grpc/health/v1/health.proto"))
        assert health_file.name == "grpc/health/v1/health.proto"
        assert health_file.package == "grpc.health.v1"
        for symbol in (FIBONACCI, "fibonacci.Number", "fibonacci.Fibonacci.AtIndex"):
            assert first_file(ask(stub, file_containing_symbol=symbol)).name == "fibonacci.proto", symbol
        assert first_file(ask(stub, file_containing_symbol=HEALTH)).name == "grpc/health/v1/health.proto"

        fibonacci_file = first_file(ask(stub, file_by_filename="fibonacci.proto"))
        assert fibonacci_file.package == "fibonacci"
        assert [s.name for s in fibonacci_file.service] == ["Fibonacci"]
        assert [m.name for m in fibonacci_file.message_type] == ["Number"]

        for request in ({"file_containing_symbol": "fibonacci.NoSuchThing"},
                        {"file_containing_symbol": "no.such.Service"},
                        {"file_by_filename": "no/such/file.proto"}):
            response = ask(stub, **request)
            assert response.WhichOneof("message_response") == "error_response", (request, response)
            assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], request

        listed = ask(stub, list_services="")
        assert sorted(s.name for s in listed.list_services_response.service) == sorted(SERVICES)


def descriptor_pb2_file(raw: bytes) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    proto.ParseFromString(raw)
    return proto


def test_reflection_answers_several_requests_on_one_stream(reflection_server):
    """A reflection client (grpcurl does this) may send all its questions on
    one stream; each gets its answer, in order."""
    with grpc.insecure_channel(reflection_server.address) as channel:
        stub = V1ReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="fibonacci.Number"),
        ]
        answers = list(stub.ServerReflectionInfo(iter(requests), timeout=STEP_TIMEOUT))
        assert [a.WhichOneof("message_response") for a in answers] == [
            "list_services_response", "error_response", "file_descriptor_response"]
        assert answers[1].error_response.error_code == 5


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_grpcurl_sequence(reflection_server, version):
    """What `grpcurl -plaintext -d '{"value": 7}' HOST:PORT
    fibonacci.Fibonacci/AtIndex` asks, in its order, on one stream: the
    services, the file of the service, the extension numbers of the request
    and the response types (a known type with no extensions gets an empty
    list: grpcurl gives up on an error), then the call, built from the
    reflected schema with JSON input."""
    with grpc.insecure_channel(reflection_server.address) as channel:
        stub = reflection_stub(channel, version)
        Request = reflection_pb2.ServerReflectionRequest
        requests = [
            Request(list_services=""),
            Request(file_containing_symbol=FIBONACCI),
            Request(all_extension_numbers_of_type="fibonacci.Number"),
            Request(all_extension_numbers_of_type="fibonacci.Number"),
            Request(file_containing_symbol="fibonacci.Number.value"),
            Request(all_extension_numbers_of_type="fibonacci.NoSuchType"),
        ]
        answers = list(stub.ServerReflectionInfo(iter(requests), timeout=STEP_TIMEOUT))
        assert [a.WhichOneof("message_response") for a in answers] == [
            "list_services_response", "file_descriptor_response",
            "all_extension_numbers_response", "all_extension_numbers_response",
            "file_descriptor_response", "error_response"]
        for numbers in (answers[2], answers[3]):
            assert numbers.all_extension_numbers_response.base_type_name == "fibonacci.Number"
            assert list(numbers.all_extension_numbers_response.extension_number) == []
        assert answers[5].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
        assert answers[5].error_response.error_message == 'no message type "fibonacci.NoSuchType"'

        pool = descriptor_pool.DescriptorPool()
        for raw in answers[1].file_descriptor_response.file_descriptor_proto:
            pool.Add(descriptor_pb2_file(raw))
        method = pool.FindServiceByName(FIBONACCI).FindMethodByName("AtIndex")
        Input = message_factory.GetMessageClass(method.input_type)
        Output = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(AT_INDEX, request_serializer=Input.SerializeToString,
                                   response_deserializer=Output.FromString)
        reply = call(json_format.Parse('{"value": 7}', Input()), timeout=STEP_TIMEOUT)
        assert json_format.MessageToJson(reply, indent=None) == '{"value": 13}'
