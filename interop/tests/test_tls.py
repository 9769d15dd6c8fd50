"""TLS and mutual TLS, with certificates made for the test (pki.py): the
Rust clients and Python grpcio against the TLS server, and each way a
handshake is refused."""

import ipaddress
import os
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path

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


def served_certificate_serial(port: int) -> int:
    """The serial number of the certificate the server presents to a new
    TLS connection (ALPN h2, as gRPC clients offer)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def mount_secret(folder: Path, version: str, cert: Path, key: Path):
    """As the kubelet writes a mounted secret: the files in a folder of
    their own, `..data` a symlink to it, and tls.crt and tls.key symlinks
    through `..data`. A new version is a new folder, and `..data` renamed
    over (atomic: a reader sees all the old files or all the new)."""
    version_dir = folder / version
    version_dir.mkdir()
    shutil.copyfile(cert, version_dir / "tls.crt")
    shutil.copyfile(key, version_dir / "tls.key")
    staged = folder / "..data_tmp"
    staged.symlink_to(version)
    os.replace(staged, folder / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(Path("..data") / name)


def test_a_renewed_certificate_is_served_without_a_restart(launch, pki, tmp_path):
    """The certificate and key replaced under the running server, as the
    kubelet updates a mounted secret, while clients call: new connections
    get the new certificate, the connection open before keeps working, and
    no call fails."""
    mount_secret(tmp_path, "..v1", Path(pki.server["cert"]), Path(pki.server["key"]))
    server = launch("--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"))
    renewed = pki.renewed_server("server-renewed")
    old_serial = pki.server["certificate"].serial_number
    new_serial = renewed["certificate"].serial_number
    assert old_serial != new_serial
    assert served_certificate_serial(server.port) == old_serial

    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca["cert_pem"])
    address = f"localhost:{server.port}"
    failures, answered = [], [0, 0]  # on the long-lived channel, on new ones
    running = True

    def call_in_a_loop(fresh: bool):
        channel = None
        while running:
            if channel is None or fresh:
                if channel is not None:
                    channel.close()
                channel = grpc.secure_channel(address, credentials,
                                              options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                assert at_index(channel, 7, timeout=STEP_TIMEOUT) == 13
                answered[fresh] += 1
            except grpc.RpcError as error:
                failures.append(f"{error.code()}: {error.details()}")
        channel.close()

    threads = [threading.Thread(target=call_in_a_loop, args=(fresh,)) for fresh in (False, True)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        before = list(answered)
        mount_secret(tmp_path, "..v2", Path(renewed["cert"]), Path(renewed["key"]))
        time.sleep(0.5)
        serial_after = served_certificate_serial(server.port)
        time.sleep(0.5)
    finally:
        running = False
        for thread in threads:
            thread.join(timeout=STEP_TIMEOUT)
    summary = f"answered {before} before, {answered} in all; failures {failures[:3]}"
    assert serial_after == new_serial, summary
    assert failures == [], summary
    # Both kinds of client went on calling after the swap.
    assert answered[0] > before[0] and answered[1] > before[1], summary
    assert server.stderr() == ""
    assert any("TLS: new connections get the certificate now in" in line
               for line in server.own_lines()), server.own_lines()
