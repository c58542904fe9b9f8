"""A development CA and server certificates, for `make run`, the benchmark and the tests.

Production certificates come from the operator; this module only makes the throwaway ones
that let the whole stack run with TLS on one machine. Kept apart from :mod:`gateway.tls` so
that a serving process never loads the X.509 library (several MB per process).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.storage.files import private_directory, write_private

#: Names every development certificate is valid for, so clients can verify loopback.
_DEV_NAMES = ("localhost", "127.0.0.1", "::1")
_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class DevPki:
    """Where a development CA and its server certificates live."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        """The CA certificate clients should trust."""
        return self.directory / "ca.crt"

    def cert(self, name: str) -> Path:
        """Certificate of server ``name`` (e.g. ``gateway``, ``emulator``)."""
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        """Private key of server or client ``name``."""
        return self.directory / f"{name}.key"


#: The gateway's client certificate towards its backends (mutual TLS); its common name is
#: the identity the services are told to trust (``cpr-gateway backend --gateway-identity``).
GATEWAY_CLIENT = "gateway-client"


def ensure_dev_pki(
    directory: Path,
    servers: tuple[str, ...] = ("emulator", "gateway"),
    clients: tuple[str, ...] = (),
) -> DevPki:
    """Create a CA, one certificate per server and one per client under ``directory``, unless
    present. A client's certificate has its name as its common name (its identity) and is
    valid for client authentication only; a server's is valid for loopback names."""
    pki = DevPki(directory)
    private_directory(directory)
    ca_key_path = directory / "ca.key"
    if not (pki.ca_cert.exists() and ca_key_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _build(_name("cpr-gateway development CA"), ca_key, ca_key, None, is_ca=True)
        _write_key(ca_key_path, ca_key)
        pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca_key_loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    for server in servers:
        if pki.cert(server).exists() and pki.key(server).exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build(_name(f"cpr-gateway {server}"), key, ca_key_loaded, ca, is_ca=False)
        _write_key(pki.key(server), key)
        pki.cert(server).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for client in clients:
        if pki.cert(client).exists() and pki.key(client).exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _build(_name(client), key, ca_key_loaded, ca, is_ca=False, client=True)
        _write_key(pki.key(client), key)
        pki.cert(client).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pki


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _build(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    *,
    is_ca: bool,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    elif client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(_dev_names()), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _dev_names() -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for name in _DEV_NAMES:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    return names


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """The private key, in a file created 0600 (never readable by others, not even briefly)."""
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
