"""Escort permits as a hospital runs them: tied to one admitted patient's stay, limited per patient, scoped to
the patient's ward, ended by discharge, transfer or staff, valid no longer than the stay, the site's maximum
and the escort's health condition.

The hospital's system reports admissions (pseudonymous patient ids, never names); the registry enforces the
site's policy when a permit is issued and ends permits by revoking their card ids, which reach every gate of
the site with the next revocation-list sync (docs/ESCORT.md). Every refusal is an ``EscortRefused`` with a
reason code.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.bands import band_limit
from registry.refusals import Refused
from registry.storage import Admission, CardRecord

if TYPE_CHECKING:
    from registry.service import RegistryState

PATIENT_ID = re.compile(r"^[A-Za-z0-9._-]{4,64}$")
WARD = re.compile(r"^[A-Za-z0-9._ -]{1,64}$")
DAY_S = 86400


@dataclass(frozen=True, kw_only=True)
class EscortPolicy:
    """A site's rules for escort permits (``registry serve --escort-policy FILE``)."""

    max_escorts: int = 1  # active permits per admitted patient
    allow_swap: bool = True  # a new escort replaces the oldest permit (else: refused at the limit)
    max_days: float = 7.0  # a permit's longest validity
    require_adult: bool = True  # the escort's card must carry the adult age band
    require_condition: bool = False  # the escort must have an attested health condition, valid now

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EscortPolicy:
        """A policy from a TOML table; ValueError naming a key that is unknown or of the wrong type (a quoted
        ``allow_swap = "false"`` is a true string: it would have allowed the swaps it was meant to forbid)."""
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown escort policy keys {sorted(unknown)}")
        for key, value in raw.items():
            kind, wanted = POLICY_TYPES[key]
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
                raise ValueError(f"{key} must be {wanted}, not {value!r}")
        policy = cls(**raw)
        if policy.max_escorts < 1 or not 0 < policy.max_days <= 366:  # TOML has nan and inf
            raise ValueError("max_escorts must be >= 1 and max_days in (0, 366]")
        return policy


#: The type each key of an escort policy table must have, and how to say it.
POLICY_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "max_escorts": (int, "a whole number"), "max_days": ((int, float), "a number"),
    "allow_swap": (bool, "true or false"), "require_adult": (bool, "true or false"),
    "require_condition": (bool, "true or false")}


class EscortRefused(Refused):
    """A refusal of the escort rules (FAILED_PRECONDITION; ``invalid_request`` is INVALID_ARGUMENT)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.invalid_argument = code == "invalid_request"


@dataclass(frozen=True)
class IssuedPermit:
    card_id: str
    qr_text: str
    expires_at: int
    replaced: list[str]  # card ids of permits this one replaced (revoked)


class EscortRules:
    def __init__(self, state: RegistryState, policies: dict[str, EscortPolicy] | None = None,
                 default: EscortPolicy | None = None) -> None:
        self.state = state
        self.policies = dict(policies or {})
        self.default = default or EscortPolicy()

    def policy(self, site: str) -> EscortPolicy:
        return self.policies.get(site) or self.policies.get("*") or self.default

    # -- the hospital's admission feed ---------------------------------------------------------------------
    def admit(self, patient_id: str, site: str, ward: str, expected_days: float,
              now: float | None = None) -> Admission:
        now = time.time() if now is None else now
        if not PATIENT_ID.match(patient_id) or not WARD.match(ward) or not 0 < expected_days <= 366:
            raise EscortRefused("invalid_request", "a pseudonymous patient id (4-64 of A-Z a-z 0-9 . _ -), a site, a "
                                                   "ward and an expected stay of 0-366 days are needed")
        if not 0 < len(site) <= 128 or site == "*":  # a "*" card is good at every site's gates
            raise EscortRefused("invalid_request", f"a patient is admitted to one site (1-128 characters, not "
                                                   f"'*'), not {site[:40]!r}")
        current = self.state.storage.admission(patient_id)
        if current is not None and current.discharged is None:
            raise EscortRefused("already_admitted", f"patient {patient_id} is already admitted to {current.ward}")
        admission = Admission(patient_id=patient_id, site=site, ward=ward, admitted=now,
                              expected_until=now + expected_days * DAY_S)
        self.state.storage.put_admission(admission)
        return admission

    def _admitted(self, patient_id: str) -> Admission:
        admission = self.state.storage.admission(patient_id)
        if admission is None or admission.discharged is not None:
            raise EscortRefused("patient_not_admitted", f"patient {patient_id} is not admitted")
        return admission

    def transfer(self, patient_id: str, ward: str, now: float | None = None) -> list[str]:
        """Move the patient to another ward; their permits (scoped to the old ward) end. Returns those ended."""
        now = time.time() if now is None else now
        if not WARD.match(ward):
            raise EscortRefused("invalid_request", "ward name required")
        admission = self._admitted(patient_id)
        if admission.ward == ward:
            return []
        ended = self._end_all(patient_id, "transfer", now)
        self.state.storage.put_admission(Admission(
            patient_id=patient_id, site=admission.site, ward=ward, admitted=admission.admitted,
            expected_until=admission.expected_until))
        return ended

    def update(self, patient_id: str, expected_days: float, now: float | None = None) -> Admission:
        """A new expected end of the stay, ``expected_days`` from now (longer or shorter than the first
        estimate). Permits already issued keep their end (a signed card cannot be changed; a discharge still
        ends them); new ones may run to the new end."""
        now = time.time() if now is None else now
        if not 0 < expected_days <= 366:
            raise EscortRefused("invalid_request", "an expected remaining stay of 0-366 days is needed")
        admission = self._admitted(patient_id)
        updated = Admission(patient_id=patient_id, site=admission.site, ward=admission.ward,
                            admitted=admission.admitted, expected_until=now + expected_days * DAY_S)
        self.state.storage.put_admission(updated)
        return updated

    def discharge(self, patient_id: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        admission = self._admitted(patient_id)
        ended = self._end_all(patient_id, "discharge", now)
        self.state.storage.put_admission(Admission(
            patient_id=patient_id, site=admission.site, ward=admission.ward, admitted=admission.admitted,
            expected_until=admission.expected_until, discharged=now))
        return ended

    def _end_all(self, patient_id: str, reason: str, now: float) -> list[str]:
        ended = self.state.storage.active_permits(patient_id, now)
        for card_id in ended:
            self.end(card_id, reason, now)
        return ended

    def end(self, card_id: str, reason: str, now: float | None = None) -> int:
        """End one permit: revoke its card (a new revocation-list version) and record why."""
        now = time.time() if now is None else now
        version, _ = self.state.revoke(bytes.fromhex(card_id), reason)
        self.state.storage.end_permit(card_id, reason, now)
        return version

    # -- issuance ----------------------------------------------------------------------------------------
    def issue(self, *, patient_id: str, template_sha256: bytes, model_id: str, age_band: str | None,
              condition_until: int | None, replace: bool = False, holder: bytes | None = None,
              age_band_until: int = 0, now: float | None = None) -> IssuedPermit:
        now = time.time() if now is None else now
        admission = self._admitted(patient_id)
        policy = self.policy(admission.site)
        if len(template_sha256) != 32:
            raise EscortRefused("invalid_request", "the escort's face commitment (32 bytes) is required")
        if policy.require_adult and age_band != "adult":
            raise EscortRefused("escort_not_adult", "this site requires escorts to be adults (age band 'adult')")
        band_end = band_limit(age_band, age_band_until, now)  # BandRefused, answered like an escort refusal
        if condition_until is not None and condition_until <= now:
            raise EscortRefused("condition_expired", "the escort's health condition has already expired")
        if policy.require_condition and condition_until is None:
            raise EscortRefused("condition_required", "this site requires an attested health condition for escorts")
        if admission.expected_until <= now:
            raise EscortRefused("admission_ended", "the patient's expected stay has ended; if the patient is still "
                                                   "in, the hospital system updates it (UpdateAdmission)")
        active = self.state.storage.active_permits(patient_id, now)
        replaced: list[str] = []
        if len(active) >= policy.max_escorts:
            if not replace:
                raise EscortRefused("escort_limit", f"patient {patient_id} already has {len(active)} active escort "
                                                    f"permit(s) (site limit {policy.max_escorts})")
            if not policy.allow_swap:
                raise EscortRefused("swap_forbidden", "this site does not allow changing the escort during a stay")
            replaced = active[:len(active) - policy.max_escorts + 1]
        until = min(admission.expected_until, now + policy.max_days * DAY_S)
        if condition_until is not None:
            until = min(until, condition_until)
        if band_end is not None:
            until = min(until, band_end)
        text, card = self.state.issuer.issue(
            card_type="escort_permit", holder=holder or os.urandom(16), site=admission.site, ward=admission.ward,
            template_sha256=template_sha256, model_id=model_id, valid_for_s=max(1, int(until) - int(now)), now=now,
            age_band=age_band, condition_until=condition_until)
        card_id = card.card_id.hex()
        for old in replaced:
            self.end(old, "escort_changed", now)
        storage = self.state.storage
        storage.put_card(CardRecord(card_id=card_id, site=admission.site, card_type="escort_permit",
                                    commitment=template_sha256, model_id=model_id, issued=now,
                                    expires=float(card.expires_at)))
        storage.put_permit(card_id, patient_id, admission.site, admission.ward, now, float(card.expires_at))
        return IssuedPermit(card_id, text, card.expires_at, replaced)
