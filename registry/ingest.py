"""Token ingest: verify the device's signature and claims, then store exactly once (idempotent on cti).

Rejections (never retried by the device): ``malformed``, ``unknown_device``, ``wrong_device`` (the TLS
client is not the token's issuer), ``bad_signature``, ``stale_iat``. Freshness: a token may arrive hours
after it was made (the device queues through outages), so ``iat`` must lie within ``max_age_s`` in the
past (the devices' staleness bound) and at most ``future_skew_s`` in the future; a replayed token is
stored once and answered DUPLICATE, a reused cti with other content is rejected (``cti_conflict``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from edge.credential.codec import loads_exact, parse_cose_sign1
from edge.errors import CredentialError, SecurityError
from edge.security.tokens import verify_token
from registry.storage import Storage, TokenRow


@dataclass(frozen=True)
class IngestOutcome:
    token_id: str
    status: str  # "stored" | "duplicate" | "rejected"
    reason: str = ""


def check(storage: Storage, token: bytes, *, peer_device: str | None, now: float | None = None,
          max_age_s: int = 14 * 86400, future_skew_s: int = 300) -> IngestOutcome | TokenRow:
    """Verify one token: a TokenRow to store, or the rejection."""
    now = time.time() if now is None else now
    try:
        claims = loads_exact(parse_cose_sign1(token).payload)
        issuer = claims.get(1) if isinstance(claims, dict) else None
        token_id = claims.get(7).hex() if isinstance(claims.get(7), bytes) else ""
    except (CredentialError, Exception):
        return IngestOutcome("", "rejected", "malformed")
    if not isinstance(issuer, str) or len(token_id) != 32:
        return IngestOutcome(token_id, "rejected", "malformed")
    device = storage.device(issuer)
    if device is None:
        return IngestOutcome(token_id, "rejected", "unknown_device")
    if peer_device is not None and peer_device != issuer:
        return IngestOutcome(token_id, "rejected", "wrong_device")
    try:
        named = verify_token(token, ed25519.Ed25519PublicKey.from_public_bytes(device.signing_key))
    except SecurityError as exc:
        reason = "bad_signature" if exc.code in ("token_signature", "token_kid", "token_alg") else "malformed"
        return IngestOutcome(token_id, "rejected", reason)
    iat = named.get("iat")
    if not isinstance(iat, int) or iat > now + future_skew_s or iat < now - max_age_s:
        return IngestOutcome(token_id, "rejected", "stale_iat")
    return TokenRow(token_id=token_id, token=token, device_id=issuer, card_id=str(named.get("sub", "")), iat=iat,
                    decision=str(named.get("decision", "")), reasons=list(named.get("reasons", [])),
                    sequence=int(named.get("sequence", 0)), site=str(named.get("site", "")),
                    gate=str(named.get("gate", "")))


def ingest_batch(storage: Storage, tokens: list[bytes], *, peer_device: str | None, now: float | None = None,
                 max_age_s: int = 14 * 86400, future_skew_s: int = 300) -> list[IngestOutcome]:
    """Verify each token, then store the accepted ones in one transaction; outcomes in input order."""
    checked = [check(storage, t, peer_device=peer_device, now=now, max_age_s=max_age_s, future_skew_s=future_skew_s)
               for t in tokens]
    rows = [c for c in checked if isinstance(c, TokenRow)]
    stored = iter(storage.store_tokens(rows)) if rows else iter(())
    outcomes = []
    for c in checked:
        if isinstance(c, IngestOutcome):
            outcomes.append(c)
            continue
        result = next(stored)
        outcomes.append(IngestOutcome(c.token_id, "rejected", "cti_conflict") if result == "conflict"
                        else IngestOutcome(c.token_id, result))
    return outcomes


def ingest(storage: Storage, token: bytes, **kwargs: object) -> IngestOutcome:
    """One token (see ``ingest_batch``)."""
    return ingest_batch(storage, [token], **kwargs)[0]  # type: ignore[arg-type]
