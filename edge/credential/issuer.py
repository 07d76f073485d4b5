"""Card issuing: the same code serves `edge card issue` (development) and the reference registry."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cbor2
from cwt import COSE

from edge.credential.codec import wrap
from edge.credential.keys import PrivateKey, alg_name_for, cose_private_key, key_id
from edge.credential.model import AGE_BANDS, CARD_TYPES, Card, FaceCommitment, Scope, claims_of

ALG_IDS = {"ES256": -7, "EdDSA": -8, "Ed25519": -19}


class CardIssuer:
    """Signs cards with one issuer key. ``issue`` returns the QR text."""

    def __init__(self, private_key: PrivateKey, issuer: str, *, alg: str | None = None) -> None:
        self.alg = alg or alg_name_for(private_key)
        self.issuer = issuer
        self.kid = key_id(private_key.public_key())
        self._key = cose_private_key(private_key, self.alg)
        self._cose = COSE.new()

    def sign(self, card: Card) -> str:
        payload = cbor2.dumps(claims_of(card))
        cose = self._cose.encode(payload, self._key, protected={1: ALG_IDS[self.alg], 4: self.kid}, unprotected={})
        return wrap(cose)

    def issue(self, *, card_type: str, holder: bytes, site: str, template_sha256: bytes, model_id: str,
              valid_for_s: int = 365 * 86400, ward: str | None = None, station: str | None = None,
              window: tuple[int, int] | None = None, now: float | None = None,
              card_id: bytes | None = None, age_band: str | None = None,
              condition_until: int | None = None, acts_for: bytes | None = None,
              guardian_card: bytes | None = None) -> tuple[str, Card]:
        if card_type not in CARD_TYPES:
            raise ValueError(f"unknown card type {card_type!r}; one of {sorted(CARD_TYPES)}")
        if len(template_sha256) != 32:
            raise ValueError("template_sha256 must be 32 bytes")
        if len(holder) != 16:
            raise ValueError(f"holder must be a 16-byte pseudonym, not {len(holder)} bytes")
        if card_id is not None and len(card_id) != 16:
            raise ValueError(f"card_id must be 16 bytes, not {len(card_id)}")
        if valid_for_s <= 0:
            raise ValueError(f"valid_for_s must be a positive number of seconds, not {valid_for_s}")
        if window is not None and not window[0] < window[1]:
            raise ValueError(f"the appointment window must start before it ends, not {list(window)}")
        if (card_type == "delegation") != (acts_for is not None):
            raise ValueError("a delegation, and only a delegation, names the child's card (acts_for)")
        if age_band is not None and age_band not in AGE_BANDS:
            raise ValueError(f"unknown age band {age_band!r}; one of {sorted(AGE_BANDS)}")
        issued = int(now if now is not None else time.time())
        card = Card(card_id=card_id or os.urandom(16), issuer=self.issuer, card_type=card_type, holder=holder,
                    scope=Scope(site=site, ward=ward, station=station, window=window),
                    face=FaceCommitment(template_sha256=template_sha256, model_id=model_id),
                    issued_at=issued, not_before=issued, expires_at=issued + valid_for_s, kid=self.kid,
                    alg=ALG_IDS[self.alg], age_band=age_band, condition_until=condition_until, acts_for=acts_for,
                    guardian_card=guardian_card)
        return self.sign(card), card


def render_qr_png(text: str, path: Path, *, scale: int = 4) -> int:
    """Write the card as a PNG QR code (alphanumeric mode, error correction Q); returns the QR version."""
    import segno

    qr = segno.make_qr(text, error="q", mode="alphanumeric", boost_error=False)
    qr.save(str(path), kind="png", scale=scale, border=4)
    return int(qr.version)


def qr_version(text: str) -> int:
    import segno

    return int(segno.make_qr(text, error="q", mode="alphanumeric", boost_error=False).version)
