"""TLS and mutual TLS, with certificates made for the test (pki.py): the
Rust clients and Python grpcio against the TLS server, and each way a
handshake is refused."""

import ipaddress
import time

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from grpc_health.v1 import health_pb2, health_pb2_grpc


from harness.servers import STEP_TIMEOUT
from conftest import (
    SERVING,
    UNARY_7,
    VERSION_TAG,
    assert_one_error_line,
    at_index,
    code_of,
    run_rust_client_piped,
)


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
        result = run_rust_client_piped("client_unary", address, "--tls-ca", pki.ca["cert"], stdin="7\n")
        assert (result.returncode, result.stdout, result.stderr) == (0, UNARY_7, ""), address
    # The other three clients speak TLS too.
    result = run_rust_client_piped("client_server_stream", f"localhost:{server.port}", "--tls-ca", pki.ca["cert"],
                        stdin="3\n")
    assert (result.returncode, result.stderr) == (0, ""), result
    assert result.stdout == "enter an index integer: Fibonacci #1: 1\nFibonacci #2: 1\nFibonacci #3: 2\n"


def test_tls_rust_client_without_tls_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_rust_client_piped("client_unary", f"localhost:{server.port}", "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""  # it connects before it prompts


def test_tls_rust_client_with_a_wrong_server_name_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_rust_client_piped("client_unary", f"localhost:{server.port}", "--tls-ca", pki.ca["cert"],
                        "--tls-server-name", "wrong.example", "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_tls_rust_client_trusting_another_ca_is_refused(launch, pki):
    server = tls_server(launch, pki)
    result = run_rust_client_piped("client_unary", f"localhost:{server.port}", "--tls-ca", pki.other_ca["cert"],
                        "--connect-timeout", "1", stdin="7\n")
    assert_one_error_line(result)
    assert result.stdout == ""


def test_tls_rust_client_with_tls_server_name_localhost_on_an_ip(launch, pki):
    """--tls-server-name names the certificate's name when the address does
    not (here an IP the certificate also has, so both must work)."""
    server = tls_server(launch, pki)
    result = run_rust_client_piped("client_unary", f"127.0.0.1:{server.port}", "--tls-ca", pki.ca["cert"],
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

    good = run_rust_client_piped("client_unary", address, *common, "--tls-cert", pki.client["cert"],
                      "--tls-key", pki.client["key"], stdin="7\n")
    assert (good.returncode, good.stdout, good.stderr) == (0, UNARY_7, "")

    # No client certificate, or one from the unrelated CA: refused. (With
    # TLS 1.3 the client may finish its half of the handshake before the
    # server refuses, so it may prompt first; either way no number.)
    no_cert = run_rust_client_piped("client_unary", address, *common, stdin="7\n")
    assert_one_error_line(no_cert)
    other = run_rust_client_piped("client_unary", address, *common, "--tls-cert", pki.other_client["cert"],
                       "--tls-key", pki.other_client["key"], stdin="7\n")
    assert_one_error_line(other)
    # Not with a plaintext client either.
    plain = run_rust_client_piped("client_unary", address, "--connect-timeout", "1", stdin="7\n")
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
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=STEP_TIMEOUT).status == SERVING

    no_cert = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])
    with grpc.secure_channel(address, no_cert) as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE

    other = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"],
                                         private_key=pki.other_client["key_pem"],
                                         certificate_chain=pki.other_client["cert_pem"])
    with grpc.secure_channel(address, other) as channel:
        assert code_of(lambda: at_index(channel, 7, timeout=5)) is grpc.StatusCode.UNAVAILABLE
