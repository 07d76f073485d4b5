"""Who is calling: the identity and role in a mutual-TLS client certificate, read one unambiguous way.

A certificate names its holder in exactly one subject Common Name; a certificate with several CNs is
refused rather than read by position (which one a library returns first is not a security decision). A
role is granted by exactly one SAN URI ``urn:edge:role:<role>``; several role URIs are refused. The
certificate itself was already checked against the site's CA by the TLS handshake.

Roles on the device API: ``controller`` (a gate controller or scanner app: Verify, DecodeCard, device
status) and ``operator`` (also Enroll and the configuration). The registry uses the same reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from edge.errors import SecurityError

ROLE_URI_PREFIX = "urn:edge:role:"
CONTROLLER = "controller"
OPERATOR = "operator"
DEVICE_ROLES = (CONTROLLER, OPERATOR)


@dataclass(frozen=True)
class Identity:
    name: str
    role: str | None  # None: the certificate grants no role
    via: str  # "mtls", "unix" or "plaintext"
    not_after: float | None = None  # unix seconds at which the client certificate expires (mtls only)


def identity_from_pem(pem: bytes) -> Identity:
    """Name and role from a client certificate; SecurityError(identity_ambiguous) when either is not unique."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise SecurityError("the client certificate cannot be parsed", code="identity_invalid") from exc
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise SecurityError(f"the client certificate has {len(names)} common names; exactly one is required",
                            code="identity_ambiguous")
    name = names[0].value if isinstance(names[0].value, str) else names[0].value.decode()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(ROLE_URI_PREFIX)]
    except x509.ExtensionNotFound:
        uris = []
    if len(uris) > 1:
        raise SecurityError("the client certificate grants several roles; exactly one is allowed",
                            code="identity_ambiguous")
    return Identity(name, uris[0][len(ROLE_URI_PREFIX):] if uris else None, "mtls",
                    cert.not_valid_after_utc.timestamp())


def peer_certificate(context: grpc.ServicerContext) -> bytes | None:
    values = context.auth_context().get("x509_pem_cert")
    return values[0] if values else None
