"""The card profile carried in the CWT under the hcert claim (-260), sub-key ``PROFILE_KEY``.

Claim map (integers keep the QR small):

    CWT  1 iss (text)  4 exp  5 nbf  6 iat  7 cti (16 random bytes, the card serial and revocation handle)
    -260 { 101: profile }
    profile  1 version (1)
             2 card type (1 health card, 2 escort permit, 3 vaccination appointment)
             3 holder pseudonym (16 bytes; no name, no date of birth on the card)
             4 scope { 1 site id, 2 ward (optional), 3 station (optional), 4 [start, end] appointment window }
             5 face commitment { 1 SHA-256 of the enrolled template, 2 model id }
             6 age band (optional: 1 child under 14, 2 minor 14-17, 3 adult; never a date of birth)
             7 condition valid until (optional, unix seconds: an attested test or health status the site
               requires; checked offline at the gate)
             8 acts for (delegation only: the child's card id, 16 bytes)
             9 guardian's own card id (delegation, optional, 16 bytes)

The template itself is never in the QR: anyone who scans the code could read it, and it would not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HCERT_CLAIM = -260
PROFILE_KEY = 101
PROFILE_VERSION = 1
CARD_PREFIX = "EHC1:"

CARD_TYPES = {"health_card": 1, "escort_permit": 2, "vaccination_appointment": 3, "staff_card": 4,
              "delegation": 5}
CARD_TYPE_NAMES = {v: k for k, v in CARD_TYPES.items()}
AGE_BANDS = {"child": 1, "minor": 2, "adult": 3}
AGE_BAND_NAMES = {v: k for k, v in AGE_BANDS.items()}


@dataclass(frozen=True, kw_only=True)
class FaceCommitment:
    template_sha256: bytes
    model_id: str


@dataclass(frozen=True, kw_only=True)
class Scope:
    site: str
    ward: str | None = None
    station: str | None = None
    window: tuple[int, int] | None = None  # appointment window, unix seconds


@dataclass(frozen=True, kw_only=True)
class Card:
    """A card's content after the signature was verified (or before it is signed, for issuing)."""

    card_id: bytes
    issuer: str
    card_type: str
    holder: bytes
    scope: Scope
    face: FaceCommitment
    issued_at: int
    not_before: int
    expires_at: int
    kid: bytes = b""
    alg: int = 0
    age_band: str | None = None
    condition_until: int | None = None
    acts_for: bytes | None = None  # a delegation: the child's card id
    guardian_card: bytes | None = None  # a delegation: the guardian's own card id
    extra: dict = field(default_factory=dict)

    @property
    def card_id_hex(self) -> str:
        return self.card_id.hex()


def claims_of(card: Card) -> dict:
    scope: dict[int, object] = {1: card.scope.site}
    if card.scope.ward:
        scope[2] = card.scope.ward
    if card.scope.station:
        scope[3] = card.scope.station
    if card.scope.window:
        scope[4] = list(card.scope.window)
    profile = {1: PROFILE_VERSION, 2: CARD_TYPES[card.card_type], 3: card.holder, 4: scope,
               5: {1: card.face.template_sha256, 2: card.face.model_id}}
    if card.age_band is not None:
        profile[6] = AGE_BANDS[card.age_band]
    if card.condition_until is not None:
        profile[7] = card.condition_until
    if card.acts_for is not None:
        profile[8] = card.acts_for
    if card.guardian_card is not None:
        profile[9] = card.guardian_card
    return {1: card.issuer, 4: card.expires_at, 5: card.not_before, 6: card.issued_at, 7: card.card_id,
            HCERT_CLAIM: {PROFILE_KEY: profile}}
