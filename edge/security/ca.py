"""A small development CA for mutual TLS between devices and the registry.

``init`` makes a CA (EC P-256, 5 years); ``issue`` makes a leaf whose CN is the registry's host name or a
device id (the registry ties the client certificate's CN to the registered device). Production sites use
their own PKI; these files are for development, tests and the demo.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.errors import SecurityError
from edge.security.keys import write_secret


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init_ca(folder: Path, name: str = "edge dev CA") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=5 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    write_secret(folder / "ca.key", _pem_key(key))
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return folder / "ca.pem"


def issue_cert(folder: Path, cn: str, *, server: bool = False, days: int = 825,
               role: str | None = None) -> tuple[Path, Path]:
    """A leaf for ``cn`` signed by the CA in ``folder``: (cert path, key path). Servers get SAN = cn and may
    also be clients: a board's one certificate serves its device API and its link to the registry (with a
    server-only one the registry refused every handshake, and the board logged the registry as
    unreachable). A ``role`` (device API: controller or operator) is granted by one SAN URI
    ``urn:edge:role:<role>``.

    The leaf ends no later than the CA: a leaf that outlives its CA looks valid for ``days`` but fails every
    handshake from the CA's last day (the CLI prints the date it got)."""
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    if ca_cert.not_valid_after_utc <= now:
        raise SecurityError(f"the CA in {folder} expired on {ca_cert.not_valid_after_utc:%Y-%m-%d}; make a new one "
                            "and give every endpoint its certificates again", code="ca_expired")
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                                                    if server else [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    names: list[x509.GeneralName] = [x509.DNSName(cn)] if server else []
    if role:
        names.append(x509.UniformResourceIdentifier(f"urn:edge:role:{role}"))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = folder / f"{cn}.pem", folder / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_secret(key_path, _pem_key(key))
    return cert_path, key_path
