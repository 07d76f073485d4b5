"""The files of one mutual-TLS endpoint (CA bundle, certificate, key), read and checked before gRPC sees them.

gRPC reports a damaged or mismatched file only as "Failed to bind to address" (a listener) or as a failed
handshake on every call (a channel), which reads like a port in use or a network fault. Here each file is
parsed with ``cryptography`` and the usual mistakes are named with the file: not PEM, a key that is not the
certificate's, a certificate that the CA bundle did not sign. Expiry is read here too: every certificate of
a site is usually issued on the same day, so they expire on the same day, and an expired certificate stops
every gate at once (the daemon reports it in its log, metrics and DeviceInfo: edge.server.daemon).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.errors import ConfigError

#: Log a warning this long before a certificate expires (seconds): time for a site to issue new ones.
EXPIRY_WARNING_S = 30 * 86400


@dataclass(frozen=True)
class CertificateLife:
    """When one certificate in use stops being valid. ``role`` says which one ("listener", "listener_ca",
    "registry_client", "registry_ca"); ``not_after`` is unix seconds."""

    role: str
    path: Path
    subject: str
    not_after: float

    def remaining_s(self, now: float) -> float:
        return self.not_after - now


@dataclass(frozen=True)
class TlsFiles:
    """The bytes gRPC gets, and the lives of the certificate and of the CA that signed it."""

    ca: bytes
    cert: bytes
    key: bytes
    lives: tuple[CertificateLife, CertificateLife]

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca,
                                           require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", key=setting, code="tls_unreadable") from exc


def _invalid(path: Path, setting: str, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}", key=setting, code="tls_invalid")


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


#: Roles whose certificate a server presents; the others are clients' (edge.security.tls.load_tls_files).
SERVER_ROLES = frozenset({"listener", "registry"})


def _check_usage(cert: x509.Certificate, path: Path, setting: str, *, server: bool) -> None:
    """A certificate whose extended key usage leaves out its use fails every handshake (the peer checks it)."""
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    wanted = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    if wanted not in usages:
        use = "server (TLS Web Server Authentication)" if server else "client (TLS Web Client Authentication)"
        raise _invalid(path, setting, f"this certificate may not be used as a {use}, so peers refuse every "
                                      "handshake; issue one that may (`edge ca issue NAME --server` is both)")


def load_tls_files(ca_path: Path, cert_path: Path, key_path: Path, *, setting: str, role: str) -> TlsFiles:
    """Read and check one endpoint's files; ``setting`` is the configuration key (or option) that names the
    folder, for the error; ``role`` names the certificate in logs and metrics ("listener", "registry_client").

    Raises ConfigError: ``tls_unreadable`` (a file cannot be read) or ``tls_invalid`` (not PEM, the key is
    not the certificate's, its extended key usage leaves out this use, or no certificate in the CA bundle
    signed it)."""
    ca, cert_pem, key_pem = (_read(p, setting) for p in (ca_path, cert_path, key_path))
    try:
        authorities = x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise _invalid(ca_path, setting, "not a PEM certificate bundle") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise _invalid(cert_path, setting, "not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise _invalid(key_path, setting, "not an unencrypted PEM private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise _invalid(key_path, setting, f"a {type(key).__name__} cannot serve TLS")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, public):
        raise _invalid(key_path, setting, f"this key is not the key of {cert_path.name} (were the files of two "
                                          "different certificates copied together?)")
    _check_usage(cert, cert_path, setting, server=role in SERVER_ROLES)
    issuer = None
    for authority in authorities:
        try:
            cert.verify_directly_issued_by(authority)
        except (ValueError, TypeError, InvalidSignature):
            continue
        issuer = authority
        break
    if issuer is None:
        raise _invalid(cert_path, setting, f"not signed by a CA in {ca_path.name} (issued by "
                                           f"{cert.issuer.rfc4514_string()}); peers would refuse every handshake")
    lives = (CertificateLife(role, cert_path, _subject(cert), cert.not_valid_after_utc.timestamp()),
             CertificateLife(f"{role}_ca", ca_path, _subject(issuer), issuer.not_valid_after_utc.timestamp()))
    return TlsFiles(ca=ca, cert=cert_pem, key=key_pem, lives=lives)


def expiry_problems(lives: list[CertificateLife], now: float,
                    warn_s: float = EXPIRY_WARNING_S) -> list[tuple[str, CertificateLife]]:
    """("expired" | "expiring", life) for each certificate past its end or within ``warn_s`` of it."""
    found = []
    for life in lives:
        left = life.remaining_s(now)
        if left <= 0:
            found.append(("expired", life))
        elif left <= warn_s:
            found.append(("expiring", life))
    return found


def _end_fields(not_after: float, now: float) -> dict[str, object]:
    """A certificate's end as log fields: the date (ISO 8601, UTC) and the days left."""
    return {"not_after": dt.datetime.fromtimestamp(not_after, dt.UTC).isoformat(timespec="seconds"),
            "days_left": round((not_after - now) / 86400, 1)}


def report_expiry(log: logging.Logger, lives: tuple[CertificateLife, ...] | list[CertificateLife], now: float,
                  warn_s: float = EXPIRY_WARNING_S) -> int:
    """Log each certificate that has expired (error) or expires within ``warn_s`` (warning), with the file and
    the date, so that a site renews them before its gates stop; returns how many were logged."""
    problems = expiry_problems(list(lives), now, warn_s)
    for state, life in problems:
        fields = {"certificate": life.role, "file": str(life.path), "subject": life.subject,
                  **_end_fields(life.not_after, now)}
        if state == "expired":
            log.error("tls_certificate_expired: peers refuse every handshake until it is replaced (`edge ca "
                      "issue`) and the service restarted", extra={"fields": fields})
        else:
            log.warning("tls_certificate_expiring: issue a new one (`edge ca issue`) and restart the service "
                        "before then", extra={"fields": fields})
    return len(problems)


class PeerCertificates:
    """What a server sees of its callers' certificates: a caller whose certificate expires within ``warn_s``
    is logged, at most once a day per caller, so that the registry's log names every gate that is about to
    be shut out (a gate's own warning stays on the gate). Thread-safe enough: a lost update only repeats a
    log line."""

    def __init__(self, log: logging.Logger, warn_s: float = EXPIRY_WARNING_S, every_s: float = 86400.0) -> None:
        self.log = log
        self.warn_s = warn_s
        self.every_s = every_s
        self._logged: dict[str, float] = {}  # caller -> time of the last line (unix seconds)

    def seen(self, caller: str, not_after: float, now: float | None = None) -> bool:
        """Note one call; True when it logged."""
        now = time.time() if now is None else now
        if not_after - now > self.warn_s or now - self._logged.get(caller, -self.every_s) < self.every_s:
            return False
        self._logged[caller] = now
        self.log.warning("peer_certificate_expiring: issue this caller a new certificate (`edge ca issue`) before "
                         "then, or it is shut out", extra={"fields": {
                             "caller": caller, **_end_fields(not_after, now)}})
        return True


__all__ = ["EXPIRY_WARNING_S", "CertificateLife", "PeerCertificates", "TlsFiles", "expiry_problems", "load_tls_files",
           "report_expiry"]
