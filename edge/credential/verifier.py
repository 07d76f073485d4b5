"""Offline card verification: container, signature against the trust list, validity, revocation, policy.

Order of checks (each failure has its own reason code, first failure wins):

    card_oversized, card_prefix, card_base45, card_zlib   container (edge.credential.codec)
    card_cbor, card_cose                                   COSE_Sign1 structure
    card_alg                                               algorithm not ES256 / EdDSA / Ed25519
    card_kid_unknown                                       no trusted key with that kid
    card_signature                                         no key of that kid verifies the signature
    card_claims                                            claims missing, mistyped, or issuer mismatch
    card_not_yet_valid, card_expired                       nbf / exp with the configured clock skew
    card_revoked                                           SHA-256(cti)[:16] on the revocation list
    card_type, card_scope                                  the site's accepted types, site and window
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from cwt import COSE, VerifyError
from cwt.cose_key_interface import COSEKeyInterface

from edge.credential.codec import loads_exact, parse_cose_sign1, unwrap
from edge.credential.keys import SUPPORTED_ALGS, cose_public_key
from edge.credential.model import (
    AGE_BAND_NAMES,
    CARD_PREFIX,
    CARD_TYPE_NAMES,
    HCERT_CLAIM,
    PROFILE_KEY,
    PROFILE_VERSION,
    Card,
    FaceCommitment,
    Scope,
)
from edge.credential.trust import RevocationList, TrustedIssuer, TrustList
from edge.errors import CredentialError


def _claims_error(what: str) -> CredentialError:
    return CredentialError(f"card claims invalid: {what}", code="card_claims")


def _get(mapping: Any, key: int, kind: type | tuple[type, ...], what: str, optional: bool = False) -> Any:
    if not isinstance(mapping, dict):
        raise _claims_error(f"{what}: container is not a map")
    if key not in mapping:
        if optional:
            return None
        raise _claims_error(f"{what} missing")
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _claims_error(f"{what} has the wrong type")
    return value


def parse_claims(claims: Any, *, kid: bytes, alg: int) -> Card:
    """Typed view of a card's CWT claims; raises card_claims on anything unexpected."""
    issuer = _get(claims, 1, str, "iss")
    exp = _get(claims, 4, int, "exp")
    nbf = _get(claims, 5, int, "nbf", optional=True)
    iat = _get(claims, 6, int, "iat")
    cti = _get(claims, 7, bytes, "cti")
    if len(cti) != 16:
        raise _claims_error("cti must be 16 bytes")
    # Times are unix seconds that must fit the int64 fields every consumer uses (protobuf, SQL, tokens).
    for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
        if value is not None and not 0 <= value < 2**63:
            raise _claims_error(f"{name} is out of range")
    hcert = _get(claims, HCERT_CLAIM, dict, "hcert")
    profile = _get(hcert, PROFILE_KEY, dict, "profile")
    version = _get(profile, 1, int, "profile version")
    if version != PROFILE_VERSION:
        raise _claims_error(f"profile version {version} is not supported")
    type_id = _get(profile, 2, int, "card type")
    if type_id not in CARD_TYPE_NAMES:
        raise _claims_error(f"unknown card type {type_id}")
    holder = _get(profile, 3, bytes, "holder")
    if len(holder) != 16:
        raise _claims_error("holder must be a 16-byte pseudonym")
    scope_map = _get(profile, 4, dict, "scope")
    window = _get(scope_map, 4, list, "appointment window", optional=True)
    if window is not None and not (len(window) == 2 and all(isinstance(t, int) and not isinstance(t, bool)
                                                            and 0 <= t < 2**63 for t in window)):
        raise _claims_error("appointment window must be [start, end]")
    face = _get(profile, 5, dict, "face commitment")
    digest = _get(face, 1, bytes, "template digest")
    if len(digest) != 32:
        raise _claims_error("template digest must be 32 bytes")
    band = _get(profile, 6, int, "age band", optional=True)
    if band is not None and band not in AGE_BAND_NAMES:
        raise _claims_error(f"unknown age band {band}")
    acts_for = _get(profile, 8, bytes, "acts for", optional=True)
    guardian_card = _get(profile, 9, bytes, "guardian card", optional=True)
    if any(value is not None and len(value) != 16 for value in (acts_for, guardian_card)):
        raise _claims_error("a delegation names 16-byte card ids")
    if (acts_for is None) != (CARD_TYPE_NAMES[type_id] != "delegation"):
        raise _claims_error("a delegation, and only a delegation, names the card it acts for")
    condition = _get(profile, 7, int, "condition valid until", optional=True)
    if condition is not None and not 0 <= condition < 2**63:
        raise _claims_error("condition valid until is out of range")
    scope = Scope(site=_get(scope_map, 1, str, "site"), ward=_get(scope_map, 2, str, "ward", optional=True),
                  station=_get(scope_map, 3, str, "station", optional=True),
                  window=(window[0], window[1]) if window else None)
    return Card(card_id=cti, issuer=issuer, card_type=CARD_TYPE_NAMES[type_id], holder=holder, scope=scope,
                face=FaceCommitment(template_sha256=digest, model_id=_get(face, 2, str, "model id")),
                issued_at=iat, not_before=nbf if nbf is not None else iat, expires_at=exp, kid=kid, alg=alg,
                age_band=AGE_BAND_NAMES[band] if band is not None else None, condition_until=condition,
                acts_for=acts_for, guardian_card=guardian_card)


class CardVerifier:
    """Verifies card QR text offline. ``verify`` returns the Card or raises CredentialError(code)."""

    def __init__(self, trust: TrustList, revocations: RevocationList | None = None, *,
                 accepted_types: Iterable[str] = tuple(CARD_TYPE_NAMES.values()), site: str = "*",
                 clock_skew_s: int = 300, clock: Callable[[], float] = time.time, prefix: str = CARD_PREFIX,
                 wards: Iterable[str] = ()) -> None:
        """``wards``: the wards this gate serves; an escort permit for another ward is refused (none: any)."""
        self.trust = trust
        self.revocations = revocations or RevocationList()
        self.accepted_types = frozenset(accepted_types)
        self.site = site
        self.wards = frozenset(wards)
        self.clock_skew_s = clock_skew_s
        self.clock = clock
        self.prefix = prefix
        self._cose = COSE.new()
        self._keys: dict[tuple[int, int], COSEKeyInterface] = {}

    def _cose_key(self, entry: TrustedIssuer, alg: int) -> COSEKeyInterface | None:
        cache_key = (alg, id(entry))
        if cache_key not in self._keys:
            try:
                self._keys[cache_key] = cose_public_key(entry.public_key, SUPPORTED_ALGS[alg], entry.kid)
            except Exception:  # key type does not fit the algorithm (an EC key for EdDSA...)
                return None
        return self._keys[cache_key]

    def check_signature(self, text: str) -> tuple[bytes, TrustedIssuer, bytes, int]:
        """Container and signature only: (payload, issuer entry, kid, alg)."""
        message = parse_cose_sign1(unwrap(text, self.prefix))
        alg = message.alg
        if isinstance(alg, bool) or not isinstance(alg, int) or alg not in SUPPORTED_ALGS:
            raise CredentialError(f"unsupported signature algorithm {alg!r}", code="card_alg")
        kid = message.kid
        if not kid:
            raise CredentialError("card has no key id (kid)", code="card_kid_unknown")
        candidates = self.trust.candidates(kid)
        if not candidates:
            raise CredentialError(f"no trusted issuer key with kid {kid.hex()}", code="card_kid_unknown",
                                  kid=kid.hex())
        for entry in candidates:  # kids can collide: try every key that carries this kid
            key = self._cose_key(entry, alg)
            if key is None:
                continue
            try:
                payload = self._cose.decode(message.raw, key)
            except VerifyError:
                continue
            except Exception as exc:  # cwt.DecodeError and friends on a structurally odd message
                raise CredentialError(f"COSE message rejected: {exc}", code="card_cose") from exc
            return payload, entry, kid, alg
        raise CredentialError("card signature does not verify with any trusted key for its kid",
                              code="card_signature", kid=kid.hex())

    def verify(self, text: str, *, accepted_types: Iterable[str] | None = None) -> Card:
        """``accepted_types`` replaces the gate's list for this check (a staff card for an override)."""
        payload, entry, kid, alg = self.check_signature(text)
        try:
            claims = loads_exact(payload)
        except Exception as exc:
            raise _claims_error(f"payload is not CBOR ({exc})") from exc
        card = parse_claims(claims, kid=kid, alg=alg)
        try:
            self._check_card(card, entry, kid, frozenset(accepted_types) if accepted_types is not None
                             else self.accepted_types)
        except CredentialError as exc:  # the signature held: say which card failed (for the audit token)
            exc.details.setdefault("card_id", card.card_id_hex)
            raise
        return card

    def _check_card(self, card: Card, entry: TrustedIssuer, kid: bytes, accepted: frozenset[str]) -> None:
        if card.issuer != entry.issuer:
            raise _claims_error(f"issuer {card.issuer!r} is not the owner of key {kid.hex()} ({entry.issuer!r})")
        now = self.clock()
        if now + self.clock_skew_s < card.not_before:
            raise CredentialError("card is not valid yet", code="card_not_yet_valid", not_before=card.not_before)
        if now - self.clock_skew_s >= card.expires_at:
            raise CredentialError("card has expired", code="card_expired", expires_at=card.expires_at)
        if self.revocations.is_revoked(card.card_id):
            raise CredentialError("card has been revoked", code="card_revoked",
                                  revocation_list_version=self.revocations.version)
        if card.card_type not in accepted:
            raise CredentialError(f"a {card.card_type} is not accepted here", code="card_type")
        if self.site != "*" and card.scope.site not in (self.site, "*"):
            raise CredentialError(f"card is for site {card.scope.site!r}, this is {self.site!r}", code="card_scope")
        if card.scope.window is not None:
            start, end = card.scope.window
            if not (start - self.clock_skew_s <= now <= end + self.clock_skew_s):
                raise CredentialError("outside the card's appointment window", code="card_scope",
                                      window=[start, end])
        if card.card_type == "escort_permit" and self.wards and card.scope.ward not in self.wards:
            raise CredentialError(f"the permit is for ward {card.scope.ward!r}; this gate serves "
                                  f"{sorted(self.wards)}", code="card_ward")
        if card.condition_until is not None and now - self.clock_skew_s >= card.condition_until:
            raise CredentialError("the health condition on this card has expired", code="card_condition",
                                  condition_until=card.condition_until)
