"""Verification tokens: a CWT (RFC 8392) in COSE_Sign1 (RFC 9052), signed by the device with Ed25519.

Header: alg -19 (Ed25519, RFC 9864; verifiers also accept -8 EdDSA), kid = device key id.
Claims: iss 1 device id, aud 3 registry, sub 2 card id (hex), iat 6, exp 4, cti 7 (16 random bytes, the
idempotency key), nonce 10 (EAT), and private claims below -65536 (``CLAIM_*``). No image, no embedding:
numbers and digests only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cwt import COSE, COSEKey, VerifyError

from edge.credential.codec import loads_exact, parse_cose_sign1
from edge.errors import CredentialError, SecurityError
from edge.security.clock import ClockGuard
from edge.security.keys import DeviceKey

CLAIM_QR_SHA256 = -65537
CLAIM_CARD_KID = -65538
CLAIM_CHECKS = -65539
CLAIM_DECISION = -65540
CLAIM_REASONS = -65541
CLAIM_SITE = -65542
CLAIM_GATE = -65543
CLAIM_REVOCATION_VERSION = -65544
CLAIM_SEQUENCE = -65545
ALG_ED25519 = -19
ALG_EDDSA = -8

CLAIM_NAMES = {1: "iss", 2: "sub", 3: "aud", 4: "exp", 6: "iat", 7: "cti", 10: "nonce",
               CLAIM_QR_SHA256: "qr_sha256", CLAIM_CARD_KID: "card_kid", CLAIM_CHECKS: "checks",
               CLAIM_DECISION: "decision", CLAIM_REASONS: "reasons", CLAIM_SITE: "site", CLAIM_GATE: "gate",
               CLAIM_REVOCATION_VERSION: "revocation_list_version", CLAIM_SEQUENCE: "sequence"}


@dataclass(frozen=True, kw_only=True)
class TokenContent:
    card_id: str
    qr_text: str
    card_kid: bytes
    nonce: bytes
    decision: str
    reasons: list[str]
    checks: dict[str, Any]
    site: str
    gate: str
    revocation_version: int
    sequence: int
    extra: dict[int, Any] = field(default_factory=dict)


class TokenSigner:
    """Signs tokens with the device key; refuses while the clock is untrusted."""

    def __init__(self, key: DeviceKey, device_id: str, *, audience: str = "registry", lifetime_s: int = 300,
                 clock: ClockGuard | None = None) -> None:
        self.key = key
        self.device_id = device_id
        self.audience = audience
        self.lifetime_s = lifetime_s
        self.clock = clock or ClockGuard()
        pem = key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        self._cose_key = COSEKey.from_pem(pem, alg="Ed25519", kid=key.key_id)
        self._cose = COSE.new()

    def sign(self, content: TokenContent) -> tuple[bytes, bytes]:
        """Return (token bytes, token id)."""
        now = int(self.clock.now())
        token_id = os.urandom(16)
        claims = {1: self.device_id, 3: self.audience, 2: content.card_id, 6: now, 4: now + self.lifetime_s,
                  7: token_id, 10: content.nonce,
                  CLAIM_QR_SHA256: hashlib.sha256(content.qr_text.encode()).digest(),
                  CLAIM_CARD_KID: content.card_kid, CLAIM_CHECKS: content.checks,
                  CLAIM_DECISION: content.decision, CLAIM_REASONS: content.reasons, CLAIM_SITE: content.site,
                  CLAIM_GATE: content.gate, CLAIM_REVOCATION_VERSION: content.revocation_version,
                  CLAIM_SEQUENCE: content.sequence, **content.extra}
        token = self._cose.encode(cbor2.dumps(claims), self._cose_key,
                                  protected={1: ALG_ED25519, 4: self.key.key_id}, unprotected={})
        return token, token_id


def load_public_key(data: bytes) -> ed25519.Ed25519PublicKey:
    """A device public key from PEM or 32 raw bytes (hex or binary)."""
    data = data.strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            raw = bytes.fromhex(data.decode()) if len(data) == 64 else data
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise SecurityError(f"not an Ed25519 public key: {exc}", code="key_invalid") from exc
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SecurityError("device keys are Ed25519", code="key_invalid")
    return key


def verify_token(token: bytes, public_key: ed25519.Ed25519PublicKey, *, now: float | None = None,
                 skew_s: int = 120) -> dict[str, Any]:
    """Check a token's structure, signature and time claims; return the claims by name."""
    try:
        message = parse_cose_sign1(token)
    except CredentialError as exc:
        raise SecurityError(f"token is not a COSE_Sign1 message: {exc.message}", code="token_malformed") from exc
    if message.alg not in (ALG_ED25519, ALG_EDDSA):
        raise SecurityError(f"token algorithm {message.alg!r} is not Ed25519", code="token_alg")
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    kid = hashlib.sha256(raw).digest()[:8]
    if message.kid != kid:
        raise SecurityError("token kid does not belong to this key", code="token_kid")
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    key = COSEKey.from_pem(pem, alg="Ed25519" if message.alg == ALG_ED25519 else "EdDSA", kid=kid)
    try:
        payload = COSE.new().decode(token, key)
    except VerifyError as exc:
        raise SecurityError("token signature does not verify", code="token_signature") from exc
    try:
        claims = loads_exact(payload)
    except Exception as exc:
        raise SecurityError(f"token claims are not CBOR: {exc}", code="token_malformed") from exc
    if not isinstance(claims, dict):
        raise SecurityError("token claims are not a map", code="token_malformed")
    named = {CLAIM_NAMES.get(k, str(k)): v for k, v in claims.items()}
    if now is not None:
        if not isinstance(named.get("iat"), int) or not isinstance(named.get("exp"), int):
            raise SecurityError("token lacks iat/exp", code="token_malformed")
        if abs(now - named["iat"]) > skew_s and now > named["exp"]:
            raise SecurityError("token has expired", code="token_expired")
    return named
