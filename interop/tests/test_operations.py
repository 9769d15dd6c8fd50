"""The server as an operator runs it, driven by clients this project did not
write: Python grpcio, grpcio-health-checking and grpcio-reflection.

- health: grpc.health.v1 Check and Watch, and the switch to NOT_SERVING
  the moment SIGTERM arrives;
- reflection: v1 and v1alpha, the descriptors fetched and used to call
  AtIndex with no generated stub;
- TLS and mutual TLS, with certificates made for the test (a CA, a server
  certificate for localhost and 127.0.0.1, a client certificate, and an
  unrelated CA with a client certificate of its own);
- logs: the start-up line, one debug line per finished call, the shutdown
  lines, nothing on stderr for a client's mistake;
- limits: the maximum message size, the concurrent streams per connection;
- scale-out: three replicas behind a round_robin client, one of them killed,
  and two servers sharing a port with --reuse-port;
- deploy/kubernetes.yaml: its fields, and its probes and arguments tried
  on the real server.

Every server is the release binary on 127.0.0.1 with a port the system
picks (or, for --reuse-port, the port the first one got), stopped by the
test that started it.
"""

import datetime
import ipaddress
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Callable, List, Optional

import grpc
import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import fibonacci_pb2
import fibonacci_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("FIB_BIN_DIR", REPO / "target" / "release"))
MANIFEST = REPO / "deploy" / "kubernetes.yaml"

# A ceiling for any one step, so a hang fails the test instead of the suite
# (not a performance bound).
STEP = 30

_PACKAGE = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]
_CORE_RELEASE = next(
    line.split()[0]
    for line in (REPO / "grpc-core" / "release.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
# e.g. "fibonacci-grpc 0.2.0, gRPC C core 1.85.1"
VERSION_TAG = f"{_PACKAGE['name']} {_PACKAGE['version']}, gRPC C core {_CORE_RELEASE}"

FIBONACCI = "fibonacci.Fibonacci"
AT_INDEX = "/fibonacci.Fibonacci/AtIndex"
HEALTH = "grpc.health.v1.Health"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
SERVICES = {FIBONACCI, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA}

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

# `debug: call /fibonacci.Fibonacci/AtIndex from ipv4:127.0.0.1:54321: OK in 57us`
CALL_LINE = re.compile(
    r"debug: call (?P<method>/\S+) from (?P<peer>ipv4:127\.0\.0\.1:\d+): "
    r"(?P<code>[A-Z_]+) in (?P<duration>\d+(?:\.\d+)?(?:ns|us|ms|s))"
)


# The C core's lines, routed through the server's logger.
C_CORE_LINE = re.compile(r"(?:[a-z]+: )?grpc: ")


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build the Rust binaries first (make build)")
    return path


def server_env(**extra) -> dict:
    """The environment without RUST_LOG (it sets the log level), plus extra."""
    env = {key: value for key, value in os.environ.items() if key != "RUST_LOG"}
    env.update(extra)
    return env


# --------------------------------------------------------------------------
# The server process


class Server:
    """A running `target/release/server`. Its stdout and stderr are read as
    they come, by threads, so a test can wait for a line."""

    def __init__(self, args: List[str], env: Optional[dict] = None):
        argv = [str(binary("server"))]
        if "--host" not in args:
            argv += ["--host", "127.0.0.1"]
        if "--port" not in args:
            argv += ["--port", "0"]
        argv += args
        self.argv = argv
        self.process = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env if env is not None else server_env(),
        )
        self._stdout: List[str] = []
        self._stderr: List[str] = []
        self._changed = threading.Condition()
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
        self.wait_until(lambda: self._listening() or self.process.poll() is not None, STEP)
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
        return next((line for line in self._stdout if line.startswith("listening on ")), None)

    def _read(self, stream, sink):
        for line in stream:
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

    def require_started(self):
        assert self.address is not None, (
            f"{self.argv} printed no `listening on` line: {self.stdout()!r}; stderr: {self.stderr()!r}")
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

    def wait_for_line(self, text: str, timeout: float = STEP) -> bool:
        return self.wait_until(lambda: text in self._stdout, timeout)

    def wait_for_calls(self, count: int, method: Optional[str] = AT_INDEX, timeout: float = STEP) -> bool:
        return self.wait_until(lambda: len(self.calls(method)) >= count, timeout)

    def send(self, sig: int):
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = STEP) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(STEP)
        return code

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(5)


@pytest.fixture
def launch():
    """Starts servers for one test (`launch("--log", "debug")`) and stops
    every one of them after it."""
    started: List[Server] = []

    def start(*args: str, env: Optional[dict] = None, must_start: bool = True) -> Server:
        server = Server(list(args), env=env)
        started.append(server)
        return server.require_started() if must_start else server

    yield start
    for server in started:
        server.stop()


def run_client(kind: str, *args: str, stdin: str = "", timeout: float = STEP) -> subprocess.CompletedProcess:
    """A Rust client with its input piped in (so no echo: the prompt is
    followed directly by what is printed next)."""
    return subprocess.run([str(binary(kind)), *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=server_env())


def assert_one_error_line(result: subprocess.CompletedProcess, exit_code: int = 1):
    assert result.returncode == exit_code, result
    assert result.stderr.startswith("error: "), result
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result
    assert "Fibonacci #" not in result.stdout, result


def at_index(channel: grpc.Channel, value: int, **kwargs) -> int:
    stub = fibonacci_pb2_grpc.FibonacciStub(channel)
    kwargs.setdefault("timeout", STEP)
    return stub.AtIndex(fibonacci_pb2.Number(value=value), **kwargs).value


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


UNARY_7 = "enter an index integer: Fibonacci #7: 13\n"


# --------------------------------------------------------------------------
# 1. Health


def test_health_check_serving_and_unknown_service(launch):
    server = launch()
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", FIBONACCI):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=STEP)
            assert response.status == SERVING, service
        with pytest.raises(grpc.RpcError) as raised:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=STEP)
        assert raised.value.code() is grpc.StatusCode.NOT_FOUND
        # Watch on an unknown service is not an error: it reports
        # SERVICE_UNKNOWN (the health protocol's rule for Watch).
        watch = health.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=STEP)
        assert next(watch).status == SERVICE_UNKNOWN
        watch.cancel()


def test_health_watch_sees_not_serving_on_sigterm_and_the_server_exits_0(launch):
    server = launch("--grace-period", "1")
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watches = {service: health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=STEP)
                   for service in ("", FIBONACCI)}
        for service, watch in watches.items():
            assert next(watch).status == SERVING, service

        server.send(signal.SIGTERM)
        for service, watch in watches.items():
            assert next(watch).status == NOT_SERVING, service
        # Nothing after NOT_SERVING says SERVING again; the stream ends when
        # the grace period cancels it (or the server ends it).
        for service, watch in watches.items():
            later = []
            try:
                for response in watch:
                    later.append(response.status)
            except grpc.RpcError as error:
                assert error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED, (service, error)
            assert SERVING not in later, (service, later)

    assert server.wait_exit() == 0
    lines = server.own_lines()
    assert "SIGTERM: shutting down, grace period 1s" in lines, lines
    assert re.fullmatch(r"stopped: \d+ calls drained, \d+ cancelled", lines[-1]), lines
    assert server.stderr() == ""


# --------------------------------------------------------------------------
# 2. Reflection


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
                                          timeout=STEP)
    answers = list(responses)
    assert len(answers) == 1, answers
    return answers[0]


@pytest.fixture(scope="module")
def reflection_server():
    server = Server([])
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
        assert call(Number(value=7), timeout=STEP).value == 13
        with pytest.raises(grpc.RpcError) as raised:
            call(Number(value=47), timeout=STEP)
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
        answers = list(stub.ServerReflectionInfo(iter(requests), timeout=STEP))
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
        answers = list(stub.ServerReflectionInfo(iter(requests), timeout=STEP))
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
        reply = call(json_format.Parse('{"value": 7}', Input()), timeout=STEP)
        assert json_format.MessageToJson(reply, indent=None) == '{"value": 13}'


# --------------------------------------------------------------------------
# 3. TLS and mutual TLS


class Pki:
    """Certificates made for the test run: `ca` signs `server` (localhost,
    127.0.0.1) and `client`; `other_ca` is unrelated and signs
    `other_client`. Each attribute is a dict of PEM paths and bytes."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ca = self._authority("Fibonacci test CA")
        self.other_ca = self._authority("Unrelated test CA")
        self.server = self._leaf("server", self.ca, "localhost",
                                 [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                 ExtendedKeyUsageOID.SERVER_AUTH)
        self.client = self._leaf("client", self.ca, "fibonacci client", [x509.DNSName("client.example")],
                                 ExtendedKeyUsageOID.CLIENT_AUTH)
        self.other_client = self._leaf("other-client", self.other_ca, "unrelated client",
                                       [x509.DNSName("client.example")], ExtendedKeyUsageOID.CLIENT_AUTH)

    def _write(self, name: str, key, cert) -> dict:
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_path = self.folder / f"{name}.key"
        cert_path = self.folder / f"{name}.pem"
        key_path.write_bytes(key_pem)
        cert_path.write_bytes(cert_pem)
        return {"key": str(key_path), "cert": str(cert_path), "key_pem": key_pem, "cert_pem": cert_pem,
                "private_key": key, "certificate": cert}

    @staticmethod
    def _validity(builder):
        now = datetime.datetime.now(datetime.timezone.utc)
        return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
            now + datetime.timedelta(days=1))

    def _authority(self, name: str) -> dict:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = self._validity(
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()))
        cert = (builder
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return self._write(name.split()[0].lower() + "-ca", key, cert)

    def _leaf(self, name: str, issuer: dict, common_name: str, names, usage) -> dict:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer_cert = issuer["certificate"]
        builder = self._validity(
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(issuer_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()))
        cert = (builder
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer["private_key"].public_key()), critical=False)
                .sign(issuer["private_key"], hashes.SHA256()))
        return self._write(name, key, cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def test_the_generated_certificates_chain_as_intended(pki):
    def verified_by(leaf, authority):
        try:
            leaf["certificate"].verify_directly_issued_by(authority["certificate"])
            return True
        except (ValueError, TypeError, InvalidSignature):
            return False

    assert verified_by(pki.server, pki.ca)
    assert verified_by(pki.client, pki.ca)
    assert verified_by(pki.other_client, pki.other_ca)
    assert not verified_by(pki.other_client, pki.ca)
    assert not verified_by(pki.client, pki.other_ca)
    names = pki.server["certificate"].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def tls_server(launch, pki, mutual=False):
    args = ["--tls-cert", pki.server["cert"], "--tls-key", pki.server["key"]]
    if mutual:
        args += ["--tls-client-ca", pki.ca["cert"]]
    return launch(*args)


def test_tls_server_start_line(launch, pki):
    server = tls_server(launch, pki)
    assert server.listening_line == f"listening on 127.0.0.1:{server.port} (TLS, {VERSION_TAG})"


def test_tls_rust_client_with_the_ca(launch, pki):
    server = tls_server(launch, pki)
    for address in (f"localhost:{server.port}", f"127.0.0.1:{server.port}"):
        result = run_client("client_unary", address, "--tls-ca", pki.ca["cert"], stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, ""), address
    # The other three clients speak TLS too.
    result = run_client("client_server_stream", f"localhost:{server.port}", "--tls-ca", pki.ca["cert"],
                        stdin="3\n")
    assert (result.returncode, result.stderr) == (0, ""), result
    assert result.stdout == "enter an index integer: Fibonacci #1: 1\nFibonacci #2: 1\nFibonacci #3: 2\n"


def test_tls_rust_client_without_tls_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_client("client_unary", f"localhost:{server.port}", "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""  # it connects before it prompts


def test_tls_rust_client_with_a_wrong_server_name_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_client("client_unary", f"localhost:{server.port}", "--tls-ca", pki.ca["cert"],
                        "--tls-server-name", "wrong.example", "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_tls_rust_client_trusting_another_ca_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_client("client_unary", f"localhost:{server.port}", "--tls-ca", pki.other_ca["cert"],
                        "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_tls_rust_client_with_tls_server_name_localhost_on_an_ip(launch, pki):
    """--tls-server-name names the certificate's name when the address does
    not (here an IP the certificate also has, so both must work)."""
    server = tls_server(launch, pki)
    result = run_client("client_unary", f"127.0.0.1:{server.port}", "--tls-ca", pki.ca["cert"],
                        "--tls-server-name", "localhost", stdin="7\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")


def test_tls_python_client(launch, pki):
    server = tls_server(launch, pki)
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])
    with grpc.secure_channel(f"localhost:{server.port}", credentials) as channel:
        assert at_index(channel, 7) == 13
    # Plaintext to the TLS port gets no answer.
    with grpc.insecure_channel(f"localhost:{server.port}") as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE
    # Nor does a client that trusts another CA.
    other = grpc.ssl_channel_credentials(root_certificates=pki.other_ca["cert_pem"])
    with grpc.secure_channel(f"localhost:{server.port}", other) as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE


def test_refused_tls_clients_are_not_server_errors(launch, pki):
    """A client that cannot talk to a TLS server (plaintext, another CA, no
    or the wrong client certificate under mTLS) made the mistake: the
    server writes nothing to stderr for it (at most a debug line)."""
    tls = tls_server(launch, pki)
    mutual = tls_server(launch, pki, mutual=True)
    attempts = [
        (tls, None),
        (tls, grpc.ssl_channel_credentials(root_certificates=pki.other_ca["cert_pem"])),
        (mutual, grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])),
        (mutual, grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"],
                                              private_key=pki.other_client["key_pem"],
                                              certificate_chain=pki.other_client["cert_pem"])),
    ]
    for server, credentials in attempts:
        address = f"localhost:{server.port}"
        with (grpc.insecure_channel(address) if credentials is None
              else grpc.secure_channel(address, credentials)) as channel:
            assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE
    time.sleep(0.3)
    assert tls.stderr() == ""
    assert mutual.stderr() == ""


def test_mutual_tls_server_start_line(launch, pki):
    server = tls_server(launch, pki, mutual=True)
    assert server.listening_line == f"listening on 127.0.0.1:{server.port} (mutual TLS, {VERSION_TAG})"


def test_mutual_tls_rust_clients(launch, pki):
    server = tls_server(launch, pki, mutual=True)
    address = f"localhost:{server.port}"
    common = ["--tls-ca", pki.ca["cert"], "--connect-timeout", "2"]

    good = run_client("client_unary", address, *common, "--tls-cert", pki.client["cert"],
                      "--tls-key", pki.client["key"], stdin="7\n")
    assert (good.returncode, good.stdout, good.stderr) == (0, UNARY_7, "")

    # No client certificate, or one from the unrelated CA: refused. (With
    # TLS 1.3 the client may finish its half of the handshake before the
    # server refuses, so it may prompt first; either way no number.)
    no_cert = run_client("client_unary", address, *common, stdin="7\n")
    assert_one_error_line(no_cert)
    other = run_client("client_unary", address, *common, "--tls-cert", pki.other_client["cert"],
                       "--tls-key", pki.other_client["key"], stdin="7\n")
    assert_one_error_line(other)
    # Not with a plaintext client either.
    plain = run_client("client_unary", address, "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(plain)


def test_mutual_tls_python_clients(launch, pki):
    server = tls_server(launch, pki, mutual=True)
    address = f"localhost:{server.port}"
    right = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"],
                                         private_key=pki.client["key_pem"],
                                         certificate_chain=pki.client["cert_pem"])
    with grpc.secure_channel(address, right) as channel:
        assert at_index(channel, 7) == 13
        # The server's answers are unchanged under mTLS, refusals included.
        assert code_of(lambda: at_index(channel, 47)) is grpc.StatusCode.OUT_OF_RANGE
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=STEP).status == SERVING

    no_cert = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])
    with grpc.secure_channel(address, no_cert) as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE

    other = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"],
                                         private_key=pki.other_client["key_pem"],
                                         certificate_chain=pki.other_client["cert_pem"])
    with grpc.secure_channel(address, other) as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE


# --------------------------------------------------------------------------
# 4. Logs


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


def open_stream_sequence(stub):
    """A StreamSequence call whose requests the test feeds one by one."""
    requests: "queue.Queue[Optional[int]]" = queue.Queue()

    def feed():
        while True:
            value = requests.get()
            if value is None:
                return
            yield fibonacci_pb2.Number(value=value)

    responses = stub.StreamSequence(feed(), timeout=STEP)
    return requests, responses


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
        assert [n.value for n in stub.GetSequence(fibonacci_pb2.Number(value=3), timeout=STEP)] == [1, 1, 2]
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


# --------------------------------------------------------------------------
# 5. Limits


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


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
        assert code_of(lambda: call(oversized, timeout=STEP)) is grpc.StatusCode.RESOURCE_EXHAUSTED
        # The limit is inclusive: 64 bytes pass, 65 do not.
        assert call(number_7_padded_to(64), timeout=STEP) == b"\x08\x0d"
        assert code_of(lambda: call(number_7_padded_to(65), timeout=STEP)) is grpc.StatusCode.RESOURCE_EXHAUSTED
        # The same channel goes on working.
        assert at_index(channel, 7) == 13
    with grpc.insecure_channel(server.address) as channel:
        assert at_index(channel, 7) == 13
    assert server.stderr() == ""


def test_default_max_message_size_is_64_kib(launch):
    server = launch()
    with grpc.insecure_channel(server.address) as channel:
        call = raw_at_index(channel)
        assert call(number_7_padded_to(65536), timeout=STEP) == b"\x08\x0d"
        assert code_of(lambda: call(number_7_padded_to(65537), timeout=STEP)) is grpc.StatusCode.RESOURCE_EXHAUSTED
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
            error = rpc_error_of(lambda: received.extend(call(request, timeout=STEP)))
        else:
            error = rpc_error_of(lambda: call(request, timeout=STEP))
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
    result = subprocess.run([str(binary("server")), "--help"], capture_output=True, text=True, timeout=STEP)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--grace-period", "--reuse-port", "--tls-cert", "--tls-key",
                 "--tls-client-ca", "--log", "--max-concurrent-streams", "--max-message-size",
                 "--keepalive-time", "--keepalive-timeout", "--memory-quota-mib"):
        assert flag in result.stdout, flag
    client = subprocess.run([str(binary("client_unary")), "--help"], capture_output=True, text=True, timeout=STEP)
    assert client.returncode == 0
    for flag in ("--connect-timeout", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"):
        assert flag in client.stdout, flag


# --------------------------------------------------------------------------
# 6. Scale-out


def counts(servers: List[Server]) -> List[int]:
    return [len(server.calls(AT_INDEX)) for server in servers]


def wait_counts(servers: List[Server], expected_total: int, timeout: float = STEP) -> List[int]:
    """Call lines are written when a call finishes, a moment after the
    client has its answer: wait until all of them are there."""
    deadline = time.monotonic() + timeout
    while sum(counts(servers)) < expected_total and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # and no more than that
    return counts(servers)


# What a client of several replicas needs so that a replica's death costs
# no call: round_robin, and a retry on UNAVAILABLE. wait_for_ready is not
# enough: when a replica is killed, the client may write its next call to
# the dead replica's socket before its poller has read the FIN, and that
# call fails with UNAVAILABLE "Stream removed (Socket closed)" whatever
# wait_for_ready says (measured: the first call after the kill failed so
# in about 1 run in 10, with and without wait_for_ready). A retry goes to
# the next READY replica. AtIndex is idempotent, so retrying is safe.
RETRY_ON_UNAVAILABLE = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": FIBONACCI}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.01s",
            "maxBackoff": "0.1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def test_round_robin_over_three_replicas_and_one_killed(launch):
    replicas = [launch("--log", "debug") for _ in range(3)]
    target = "ipv4:" + ",".join(server.address for server in replicas)
    options = [("grpc.lb_policy_name", "round_robin"), ("grpc.enable_retries", 1),
               ("grpc.service_config", RETRY_ON_UNAVAILABLE)]
    with grpc.insecure_channel(target, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=STEP)
        # The channel is READY as soon as one replica is; round_robin picks
        # among the READY ones, so warm up until every replica has answered.
        warm_up = 0
        while min(counts(replicas)) == 0:
            assert at_index(channel, 7) == 13
            warm_up += 1
            assert warm_up < 300, counts(replicas)
        before = wait_counts(replicas, warm_up)

        for _ in range(30):
            assert at_index(channel, 7) == 13
        after = wait_counts(replicas, warm_up + 30)
        per_replica = [a - b for a, b in zip(after, before)]
        # Every replica READY: round_robin goes round in order, strictly.
        assert per_replica == [10, 10, 10], (before, after)

        # One replica dies without a word (no GOAWAY: SIGKILL).
        dead = replicas[1]
        dead.process.kill()
        dead.process.wait(timeout=STEP)
        living = [replicas[0], replicas[2]]
        before = wait_counts(living, sum(counts(living)))
        failures = []
        for number in range(30):
            try:
                assert at_index(channel, 7, timeout=10) == 13
            except grpc.RpcError as error:
                failures.append((number, error.code(), error.details()))
        assert failures == []
        after = wait_counts(living, sum(before) + 30)
        per_living = [a - b for a, b in zip(after, before)]
        assert sum(per_living) == 30
        assert per_living == [15, 15], per_living

    # The Rust client, with the same three addresses, one of them dead.
    addresses = ",".join(server.address for server in replicas)
    result = run_client("client_unary", addresses, stdin="7\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")
    for server in living:
        assert server.stderr() == ""


def test_rust_client_address_list_and_uris(launch):
    replicas = [launch("--log", "debug") for _ in range(3)]
    addresses = ",".join(server.address for server in replicas)
    for address in (addresses, f"dns:///127.0.0.1:{replicas[0].port}", f"ipv4:127.0.0.1:{replicas[2].port}",
                    f"dns:///localhost:{replicas[1].port}"):
        result = run_client("client_unary", address, stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, ""), address

    # A dead first address does not stop the client: round_robin connects
    # to the others.
    replicas[0].process.kill()
    replicas[0].process.wait(timeout=STEP)
    for _ in range(3):
        result = run_client("client_unary", addresses, stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")
    # All dead: the one error line.
    for server in replicas[1:]:
        server.process.kill()
        server.process.wait(timeout=STEP)
    result = run_client("client_unary", addresses, "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_rust_client_ipv4_uri_with_several_addresses(launch):
    """`ipv4:a,b,c` is a gRPC target URI as it stands: the client passes it
    through (only a bare comma-separated list gets the `ipv4:` scheme)."""
    replicas = [launch() for _ in range(3)]
    target = "ipv4:" + ",".join(server.address for server in replicas)
    result = run_client("client_unary", target, stdin="7\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, "")


def test_two_servers_share_a_port_with_reuse_port(launch):
    first = launch("--reuse-port", "--log", "debug")
    second = launch("--reuse-port", "--log", "debug", "--port", str(first.port))
    assert second.port == first.port
    assert second.listening_line == f"listening on 127.0.0.1:{first.port} (plaintext, {VERSION_TAG})"

    # The kernel spreads new connections over the two: 24 fresh channels
    # (so 24 source ports) all landing on one server would be a 1 in 2^23
    # chance.
    for _ in range(24):
        with grpc.insecure_channel(first.address) as channel:
            assert at_index(channel, 7) == 13
    wait_counts([first, second], 24)
    assert sum(counts([first, second])) == 24
    assert min(counts([first, second])) >= 1, counts([first, second])

    # A third server without --reuse-port is refused the port.
    third = launch("--port", str(first.port), must_start=False)
    assert third.wait_exit() == 1
    assert third.own_lines() == []
    assert third.stderr().startswith(f"error: cannot listen on 127.0.0.1:{first.port}")
    assert third.stderr().count("\n") == 1

    # When one goes, the other keeps the port.
    first.send(signal.SIGTERM)
    assert first.wait_exit() == 0
    with grpc.insecure_channel(second.address) as channel:
        assert at_index(channel, 7) == 13


# --------------------------------------------------------------------------
# 7. deploy/kubernetes.yaml


@pytest.fixture(scope="module")
def manifest():
    documents = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    return {d["kind"]: d for d in documents}


def option(args: List[str], flag: str) -> str:
    assert flag in args, args
    return args[args.index(flag) + 1]


def test_manifest_deployment(manifest):
    assert set(manifest) == {"Deployment", "Service"}
    deployment = manifest["Deployment"]
    assert deployment["apiVersion"] == "apps/v1"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    [container] = pod["containers"]
    args = container["args"]
    assert option(args, "--port") == "1337"
    assert option(args, "--host") == "[::]"
    grace = float(option(args, "--grace-period"))
    assert pod["terminationGracePeriodSeconds"] > grace
    assert [(p["containerPort"], p["name"]) for p in container["ports"]] == [(1337, "grpc"), (9090, "metrics")]
    assert option(args, "--metrics-port") == "9090"
    assert spec["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": "9090", "prometheus.io/path": "/metrics"}
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]

    readiness = container["readinessProbe"]["grpc"]
    liveness = container["livenessProbe"]["grpc"]
    assert readiness == {"port": 1337, "service": FIBONACCI}
    assert liveness == {"port": 1337, "service": ""}


def test_manifest_headless_service(manifest):
    service = manifest["Service"]
    assert service["apiVersion"] == "v1"
    assert service["metadata"]["name"] == "fibonacci"
    spec = service["spec"]
    assert spec["clusterIP"] == "None"
    assert [(p["name"], p["port"], p["targetPort"]) for p in spec["ports"]] == [("grpc", 1337, "grpc")]
    labels = manifest["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert spec["selector"].items() <= labels.items()


def test_manifest_header_says_how_it_is_used():
    text = MANIFEST.read_text()
    header = text.split("\n---", 1)[0]
    assert "dns:///fibonacci.default.svc.cluster.local:1337" in header
    assert "round_robin" in header


def test_manifest_arguments_and_probes_on_the_real_server(launch, manifest):
    """The container's arguments start the real server (with the host and
    port swapped for the test's), and the health checks the probes make
    answer SERVING: what the kubelet would see."""
    container = manifest["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = "0"
    args[args.index("--metrics-port") + 1] = "0"
    server = launch(*args)
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for probe in ("readinessProbe", "livenessProbe"):
            service = container[probe]["grpc"]["service"]
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=STEP).status == SERVING
        assert at_index(channel, 7) == 13
    # What the prometheus.io annotations point a scraper at.
    metrics_lines = lambda: [line for line in server.stdout() if line.startswith("metrics at ")]  # noqa: E731
    assert server.wait_until(metrics_lines, STEP), server.stdout()
    [metrics_line] = metrics_lines()
    with urllib.request.urlopen(metrics_line.split()[-1], timeout=STEP) as response:
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="AtIndex"' in response.read().decode()
    # The pod's shutdown: SIGTERM, then the grace period the args give,
    # well inside terminationGracePeriodSeconds.
    server.send(signal.SIGTERM)
    started = time.monotonic()
    assert server.wait_exit() == 0
    assert time.monotonic() - started < manifest["Deployment"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]
