"""Throw-away certificates for the TLS tests: a CA that signs a server
certificate (localhost, 127.0.0.1) and a client certificate, and an
unrelated CA with a client certificate of its own."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


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

    def renewed_server(self, name: str) -> dict:
        """A new server certificate and key for the same names, from the
        same CA, as a renewal (cert-manager's) brings: written as
        `name`.pem and `name`.key."""
        return self._leaf(name, self.ca, "localhost",
                          [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                          ExtendedKeyUsageOID.SERVER_AUTH)

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
