"""Token ingest: check each token on its own, then store the accepted ones exactly once.

A token is judged alone and answered alone: one bad token never fails the batch, and a rejection carries a
reason code, never exception text. In order:

- size (``too_large`` above ``MAX_TOKEN_BYTES``) and structure (``malformed``);
- the issuing device: registered (``unknown_device``), the caller itself when a device delivers
  (``wrong_device``), its key by the token's ``kid`` (``unknown_key``), the signature (``bad_signature``);
- every claim's type and range (``bad_claims``), ``aud`` (``wrong_audience``), the site claim against the
  device's registered site (``wrong_site``);
- the device's state: a suspended or retired device's tokens are accepted only if signed before it stopped
  being active, and only with a key that was valid at their ``iat`` (``device_inactive``, ``unknown_key``);
- a staff override (reason STAFF_OVERRIDE): the staff card must be one the registry issued as a staff card for
  the device's site, the refused session a DENY token of the same device (or, for a RETRY, a card id), not
  overridden before: a DENY once, a card once per 10 minutes (edge/gate/overrides.py; ``override_invalid``,
  ``override_used``);
- a vaccination record (reason VACCINATION_RECORD): registry/vaccination.py (``record_unbound``,
  ``appointment_used``, ``vaccine_unknown``, ``lot_invalid``, ``expiry_invalid``, ``lot_expired``,
  ``dose_out_of_series``, ``route_or_site_invalid``, ``performer_invalid``, ``record_invalid``,
  ``occurred_before_verification``);
- time: ``iat`` within ``max_age_s`` in the past (the devices' staleness bound: tokens queue through
  outages) and at most ``future_skew_s`` ahead (``stale_iat``: a clock is wrong, the device retries later);
  ``exp`` bounds a relying party's use of the token, not its delivery, so it must only be coherent
  (``iat < exp <= iat + MAX_LIFETIME_S``).

Idempotency is per (device, cti): a replay is DUPLICATE, a reused cti with other content ``cti_conflict``,
and one device's cti can never block another device's token.

A cap per device and UTC day of ``iat`` (``max_per_device_day``; ``device_rate``): a compromised gate signs
as many tokens as it likes and could fill the registry's disk, which would stop every gate of the hospital.
Counted by the day the token was signed, not the day it arrives, so a gate's backlog after an outage spreads
over the days it was made and is never capped; a session needs at least 1.5 s of frames for liveness (45
at 30 fps; 3.5 s with a challenge), so a gate signs at most about 58,000 a day, and the default of 100,000
never caps a working one. The gate keeps a capped token queued, and an operator who raises the cap gets it
on the next delivery.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from edge.credential.codec import loads_exact, parse_cose_sign1
from edge.errors import SecurityError
from edge.gate.overrides import already_overridden
from edge.security.tokens import verify_token
from registry.storage import Storage, TokenRow
from registry.vaccination import record_link

MAX_TOKEN_BYTES = 2048
MAX_LIFETIME_S = 86400
INT64_MAX = 2**63 - 1
DECISIONS = {"ALLOW", "DENY", "RETRY"}
REASON = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")
HEX_CARD = re.compile(r"^([0-9a-f]{32})?$")


@dataclass(frozen=True)
class IngestOutcome:
    token_id: str
    status: str  # "stored" | "duplicate" | "rejected"
    reason: str = ""


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit and value.isprintable()


def claims_problem(named: dict[str, Any], *, audience: str) -> str | None:
    """The reason code for the first claim of the wrong type or range, or None when all are sound."""
    iat, exp = named.get("iat"), named.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int) or not _int(iat, 0, INT64_MAX) \
            or not _int(exp, 0, INT64_MAX) or not iat < exp <= iat + MAX_LIFETIME_S:
        return "bad_claims"
    if not _text(named.get("sub"), 32) or not HEX_CARD.match(named["sub"]):
        return "bad_claims"
    if named.get("decision") not in DECISIONS:
        return "bad_claims"
    reasons = named.get("reasons")
    if not isinstance(reasons, list) or not 1 <= len(reasons) <= 16 or not all(
            isinstance(r, str) and REASON.match(r) for r in reasons):
        return "bad_claims"
    if not _int(named.get("sequence"), 0, INT64_MAX) or not _text(named.get("gate"), 128) \
            or not _text(named.get("site"), 128):
        return "bad_claims"
    nonce = named.get("nonce")
    if not isinstance(nonce, bytes) or not 8 <= len(nonce) <= 64:
        return "bad_claims"
    if named.get("aud") != audience:
        return "wrong_audience"
    return None


def override_link(storage: Storage, named: dict[str, Any], *, device_id: str, site: str,
                  batch: dict[str, TokenRow]) -> dict[str, str] | str:
    """The checked link of an override token, or the rejection code."""
    checks = named.get("checks")
    link = checks.get("override") if isinstance(checks, dict) else None
    if not isinstance(link, dict) or not all(isinstance(link.get(k), str) for k in ("refused", "staff_card", "reason")):
        return "override_invalid"
    staff = storage.card(link["staff_card"])
    if staff is None or staff.card_type != "staff_card" or staff.site != site:
        return "override_invalid"
    refused = link["refused"]
    if refused.startswith("card:"):
        if not HEX_CARD.match(refused[5:]) or refused[5:] != named["sub"]:
            return "override_invalid"
    else:
        earlier = batch.get(refused) or storage.token(device_id, refused)
        if earlier is None or earlier.decision != "DENY" or earlier.card_id != named["sub"]:
            return "override_invalid"
    times = storage.override_times(device_id, refused) + [
        row.iat for row in batch.values() if row.override is not None and row.override["refused"] == refused]
    if already_overridden(refused, times, int(named["iat"])):
        return "override_used"
    return {"refused": refused, "staff_card": link["staff_card"], "reason": link["reason"][:64]}


def check(storage: Storage, token: bytes, *, peer_device: str | None, now: float | None = None,
          max_age_s: int = 14 * 86400, future_skew_s: int = 300, audience: str = "registry",
          batch: dict[str, TokenRow] | None = None) -> IngestOutcome | TokenRow:
    """Verify one token: a TokenRow to store, or the rejection."""
    now = time.time() if now is None else now
    if not isinstance(token, bytes) or len(token) > MAX_TOKEN_BYTES:
        return IngestOutcome("", "rejected", "too_large")
    try:
        message = parse_cose_sign1(token)
        claims = loads_exact(message.payload)
        issuer = claims.get(1) if isinstance(claims, dict) else None
        cti = claims.get(7) if isinstance(claims, dict) else None
    except Exception:  # any parse failure is the sender's: answer with a code, keep the details out
        return IngestOutcome("", "rejected", "malformed")
    token_id = cti.hex() if isinstance(cti, bytes) and len(cti) == 16 else ""
    if not token_id or not isinstance(issuer, str) or not _text(issuer, 128) or not isinstance(message.kid, bytes) \
            or len(message.kid) != 8:
        return IngestOutcome(token_id, "rejected", "malformed")
    device = storage.device(issuer)
    if device is None:
        return IngestOutcome(token_id, "rejected", "unknown_device")
    if peer_device is not None and peer_device != issuer:
        return IngestOutcome(token_id, "rejected", "wrong_device")
    key = storage.device_key(issuer, message.kid.hex())
    if key is None:
        return IngestOutcome(token_id, "rejected", "unknown_key")
    raw_key, valid_from, valid_until = key
    batch = batch or {}
    try:
        named = verify_token(token, ed25519.Ed25519PublicKey.from_public_bytes(raw_key))
    except SecurityError as exc:
        reason = "bad_signature" if exc.code in ("token_signature", "token_kid", "token_alg") else "malformed"
        return IngestOutcome(token_id, "rejected", reason)
    except Exception:
        return IngestOutcome(token_id, "rejected", "malformed")
    problem = claims_problem(named, audience=audience)
    if problem is not None:
        return IngestOutcome(token_id, "rejected", problem)
    if named["site"] != device.site:
        return IngestOutcome(token_id, "rejected", "wrong_site")
    iat = int(named["iat"])
    if device.state != "active" and (device.state_since is None or iat >= device.state_since):
        return IngestOutcome(token_id, "rejected", "device_inactive")
    if valid_until is not None and not valid_from - future_skew_s <= iat < valid_until:
        return IngestOutcome(token_id, "rejected", "unknown_key")  # signed with a key after its rotation
    if iat > now + future_skew_s or iat < now - max_age_s:
        return IngestOutcome(token_id, "rejected", "stale_iat")
    record: dict[str, Any] | None = None
    # A redelivered token is answered DUPLICATE (or cti_conflict) by the store; its links were checked when it
    # was first stored, and checking them again would find them used.
    redelivered = storage.token(issuer, token_id) is not None
    if "VACCINATION_RECORD" in named["reasons"] and not redelivered:
        checked = record_link(storage, named, device_id=issuer, site=device.site, record_id=token_id, batch=batch,
                              now=now)
        if isinstance(checked, str):
            return IngestOutcome(token_id, "rejected", checked)
        record = checked
    override: dict[str, str] | None = None
    if "STAFF_OVERRIDE" in named["reasons"] and not redelivered:
        link = override_link(storage, named, device_id=issuer, site=device.site, batch=batch)
        if isinstance(link, str):
            return IngestOutcome(token_id, "rejected", link)
        override = link
    return TokenRow(token_id=token_id, token=token, device_id=issuer, card_id=named["sub"], iat=iat,
                    decision=named["decision"], reasons=list(named["reasons"]), sequence=int(named["sequence"]),
                    site=named["site"], gate=named["gate"], override=override, record=record)


def ingest_batch(storage: Storage, tokens: list[bytes], *, peer_device: str | None, now: float | None = None,
                 max_age_s: int = 14 * 86400, future_skew_s: int = 300, audience: str = "registry",
                 max_per_device_day: int = 0) -> list[IngestOutcome]:
    """Verify each token, then store the accepted ones in one transaction; outcomes in input order.
    ``max_per_device_day``: the daily cap on a delivering device's tokens (0: none; the administrator's
    deliveries are never capped)."""
    checked: list[IngestOutcome | TokenRow] = []
    accepted: dict[str, TokenRow] = {}  # an override may refer to a refusal delivered in the same call
    signed: dict[int, int] = {}  # the device's tokens per day of iat, stored or accepted in this call
    for t in tokens:
        result = check(storage, t, peer_device=peer_device, now=now, max_age_s=max_age_s,
                       future_skew_s=future_skew_s, audience=audience, batch=accepted)
        if isinstance(result, TokenRow) and max_per_device_day and peer_device is not None:
            day = result.iat // 86400
            if day not in signed:
                signed[day] = storage.tokens_signed(result.device_id, day)
            if signed[day] >= max_per_device_day:
                if storage.token(result.device_id, result.token_id) is None:  # a re-delivery stays DUPLICATE
                    result = IngestOutcome(result.token_id, "rejected", "device_rate")
            else:
                signed[day] += 1
        if isinstance(result, TokenRow):
            accepted[result.token_id] = result
        checked.append(result)
    rows = [c for c in checked if isinstance(c, TokenRow)]
    stored = iter(storage.store_tokens(rows)) if rows else iter(())
    outcomes = []
    for c in checked:
        if isinstance(c, IngestOutcome):
            outcomes.append(c)
            continue
        status = next(stored)
        outcomes.append(IngestOutcome(c.token_id, "rejected", "cti_conflict") if status == "conflict"
                        else IngestOutcome(c.token_id, status))
    return outcomes


def ingest(storage: Storage, token: bytes, **kwargs: object) -> IngestOutcome:
    """One token (see ``ingest_batch``)."""
    return ingest_batch(storage, [token], **kwargs)[0]  # type: ignore[arg-type]
