"""One verification session: frames in, decision and signed token out, within a time budget.

    frame source -> QR -> card check -> template lookup -> face track + liveness (challenge) -> match
                 -> site policy -> token (durable in the outbox before the reply)

Each stage is an object with one job, built once at daemon start and shared by sessions. The pipeline
only composes them, times them, and turns their typed errors into a decision with reason codes (the
names of ``edge.v1.ReasonCode``) and messages a person can read. ALLOW and DENY get a signed token;
RETRY (nothing was decided: no card shown, no face, time out) does not, and neither does a DENY for text
that no trusted issuer signed (there is no card to audit, and a signed token for junk is a flood vector).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from edge.camera.base import TimedFrame
from edge.credential.codec import loads_exact
from edge.credential.model import CARD_PREFIX, Card
from edge.credential.verifier import CardVerifier, parse_claims
from edge.errors import CredentialError, SecurityError
from edge.gate.entries import EntryLog
from edge.gate.window import MATCH_FRAMES, EventSink, Window, capture_window, settle
from edge.liveness.checker import LivenessChecker, LivenessResult
from edge.liveness.ratelimit import FailureLimiter
from edge.liveness.temporal import RETRY_HINTS, RETRYABLE, Challenge
from edge.qr.advice import NOT_A_CARD, SHOW_CARD, CardAdvisor
from edge.qr.stage import QRStage, to_grey
from edge.qr.types import QRCode
from edge.registry_client.outbox import Outbox
from edge.security.templates import TemplateStore
from edge.security.tokens import TokenContent, TokenSigner
from edge.vision.face_stage import FaceStage
from edge.vision.matcher import FaceMatcher

log = logging.getLogger(__name__)

CARD_REASONS = {
    "card_expired": "CARD_EXPIRED", "card_not_yet_valid": "CARD_NOT_YET_VALID", "card_revoked": "CARD_REVOKED",
    "card_type": "CARD_WRONG_TYPE", "card_scope": "CARD_WRONG_SCOPE", "card_kid_unknown": "CARD_SIGNATURE",
    "card_signature": "CARD_SIGNATURE", "card_alg": "CARD_SIGNATURE", "card_ward": "CARD_WRONG_WARD",
    "card_condition": "CONDITION_EXPIRED",
}
MESSAGES = {
    "OK": "Verified", "CARD_NOT_FOUND": "Please show the card's QR code to the camera",
    "CARD_INVALID": "This is not a valid card", "CARD_SIGNATURE": "This card was not issued by a trusted issuer",
    "CARD_EXPIRED": "Card expired", "CARD_NOT_YET_VALID": "Card not valid yet", "CARD_REVOKED": "Card revoked",
    "CARD_WRONG_TYPE": "This card is not accepted here", "CARD_WRONG_SCOPE": "This card is not for this place or time",
    "TEMPLATE_MISSING": "No enrolled face for this card on this device",
    "TEMPLATE_MISMATCH": "The enrolled face does not belong to this card", "NO_FACE": "No face in view",
    "FACE_QUALITY": "Please step closer and face the camera", "LIVENESS_FAILED": "Liveness check failed",
    "CHALLENGE_FAILED": "Liveness challenge not completed", "FACE_MISMATCH": "Face did not match the card holder",
    "TIME_BUDGET": "Took too long, please try again", "CLOCK_UNTRUSTED": "Device clock not synchronised",
    "CANCELLED": "Cancelled", "FACE_CHANGED": "Another person stepped in, please try again",
    "DATA_STALE": "This gate has been offline too long to check cards; please see staff",
    "RATE_LIMITED": "Too many attempts; please wait a minute or ask staff",
    "CARD_WRONG_WARD": "This permit is for another ward",
    "CONDITION_EXPIRED": "The health check on this permit has expired; please see staff",
    "ENTRY_LIMIT": "This permit cannot be used again yet; please see staff",
    "STAFF_OVERRIDE": "Let through by staff",
    "DELEGATION_REQUIRED": "This child's card needs the guardian's delegation too",
    "DELEGATION_INVALID": "The guardian's delegation is not valid",
    "DELEGATION_EXPIRED": "The guardian's delegation has expired",
    "DELEGATION_REVOKED": "The guardian's delegation has been withdrawn",
    "DELEGATION_MISMATCH": "The delegation is for another child",
    "DELEGATION_NOT_ACCEPTED": "An adult's card: the card holder must verify in person",
    "VACCINATION_RECORD": "Vaccination recorded",
}
#: What the gate says when a guardian's presentation needs its second code.
SHOW_DELEGATION = "Now show the guardian's delegation"
SHOW_CHILDS_CARD = "Now show the child's card"
#: Failures that count towards the gate's rate limit: guesses at the face or liveness checks.
LIMITED_REASONS = {"LIVENESS_FAILED", "CHALLENGE_FAILED", "FACE_MISMATCH"}


@dataclass(frozen=True, kw_only=True)
class SitePolicy:
    site: str
    gate_id: str
    require_challenge: bool = True
    #: Further challenges after a swinging, slow, small, wrong-way or pivot-less answer (temporal.RETRYABLE).
    challenge_retries: int = 1
    card_timeout_s: float = 4.0
    liveness_frames: int = 45
    session_budget_s: float = 14.0
    staleness_s: float = 86400.0
    stale_policy: str = "deny"
    face_policy: Mapping[str, str] = field(default_factory=lambda: {"child": "guardian", "minor": "either",
                                                                    "adult": "holder"})


@dataclass
class Outcome:
    decision: str
    reasons: list[str]
    card_id: str = ""
    token: bytes = b""
    token_id: str = ""
    match_score: float = 0.0
    match_threshold: float = 0.0
    liveness_score: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [MESSAGES.get(r, r) for r in self.reasons]


@dataclass(frozen=True)
class OverrideLink:
    """What a staff override refers to: the refused session (its token id, or ``card:<id>`` for a RETRY,
    which had no token), the refused person's card id, the reason picked, and the check that the staff
    member has not used up their overrides (returns a sentence when they have)."""

    refused: str
    card_id: str
    reason: str
    staff_limit: Callable[[str], str | None] = lambda staff_card_id: None


class SessionTimeout(Exception):
    pass


class SessionCancelled(Exception):
    pass


class VerificationPipeline:
    def __init__(self, *, qr: QRStage, cards: CardVerifier, templates: TemplateStore, faces: FaceStage,
                 liveness: LivenessChecker, matcher: FaceMatcher, signer: TokenSigner, outbox: Outbox,
                 policy: SitePolicy, data_age: Callable[[], float] | None = None,
                 limiter: FailureLimiter | None = None, entries: EntryLog | None = None) -> None:
        """``data_age()``: seconds since the last registry sync (None: standalone, local files only)."""
        self.qr = qr
        self.cards = cards
        self.templates = templates
        self.faces = faces
        self.liveness = liveness
        self.matcher = matcher
        self.signer = signer
        self.outbox = outbox
        self.policy = policy
        self.model_id = matcher.model.model_id  # the template id this gate matches (edge/vision/matcher.py)
        self.data_age = data_age
        self.limiter = limiter or FailureLimiter()
        self.entries = entries
        self.advisor = CardAdvisor()

    def verify(self, frames: Iterator[TimedFrame], *, nonce: bytes, card_text: str | None = None,
               deadline: float | None = None, on_event: EventSink | None = None,
               cancelled: Callable[[], bool] | None = None, delegation_text: str | None = None) -> Outcome:
        """Run one session. ``deadline`` is a time.monotonic() instant (the tighter of the RPC's and ours)."""
        return self._rate_limited(lambda: self._session(
            frames, nonce=nonce, card_text=card_text, deadline=deadline, on_event=on_event, cancelled=cancelled,
            delegation_text=delegation_text))

    def override(self, frames: Iterator[TimedFrame], *, nonce: bytes, link: OverrideLink,
                 staff_card_text: str | None = None, deadline: float | None = None,
                 on_event: EventSink | None = None, cancelled: Callable[[], bool] | None = None) -> Outcome:
        """A staff member's own session (staff card, liveness, face); if it ALLOWs, the override token."""
        return self._rate_limited(lambda: self._session(
            frames, nonce=nonce, card_text=staff_card_text, deadline=deadline, on_event=on_event, cancelled=cancelled,
            staff=link))

    def _rate_limited(self, session: Callable[[], Outcome]) -> Outcome:
        """The gate's cool-down after repeated failed guesses at the face or liveness checks."""
        wait = self.limiter.blocked_for()
        if wait > 0:
            return Outcome("RETRY", ["RATE_LIMITED"], timings={"total": 0.0},
                           prompts=[f"Please wait {int(wait) + 1} s before trying again"])
        outcome = session()
        self.limiter.record(outcome.decision == "DENY" and bool(LIMITED_REASONS & set(outcome.reasons)))
        return outcome

    def _session(self, frames: Iterator[TimedFrame], *, nonce: bytes, card_text: str | None, deadline: float | None,
                 on_event: EventSink | None, cancelled: Callable[[], bool] | None,
                 staff: OverrideLink | None = None, delegation_text: str | None = None) -> Outcome:
        start = time.monotonic()
        budget_end = start + self.policy.session_budget_s
        deadline = min(deadline, budget_end) if deadline is not None else budget_end
        emit = on_event or (lambda kind, text: None)
        is_cancelled = cancelled or (lambda: False)
        timings: dict[str, float] = {}

        def check_time() -> None:
            if is_cancelled():
                raise SessionCancelled
            if time.monotonic() > deadline:
                raise SessionTimeout

        def stage_done(name: str, began: float) -> None:
            # Summed: a challenge retry runs capture and liveness twice in one session.
            timings[name] = round(timings.get(name, 0.0) + (time.monotonic() - began) * 1000.0, 2)

        try:
            began = time.monotonic()
            emit("card", "reading card")
            from_camera = card_text is None  # a caller that sends the card text sends the delegation with it
            advice = None
            if card_text is None:
                card_text, advice = self._read_card(frames, check_time)
                if card_text is not None and not staff and self._is_delegation(card_text):
                    # The guardian showed the delegation first: the child's card comes next.
                    delegation_text = card_text
                    emit("prompt", SHOW_CHILDS_CARD)
                    card_text, advice = self._read_card(frames, check_time, skip=delegation_text)
            stage_done("qr", began)
            if card_text is None:
                return Outcome("RETRY", ["CARD_NOT_FOUND"], timings=timings, prompts=[advice or SHOW_CARD])

            stale = self.data_age is not None and self.data_age() > self.policy.staleness_s
            if stale and self.policy.stale_policy == "deny":
                card_id = self._card_id_if_signed(card_text)
                return self._finish("DENY", ["DATA_STALE"], card_id, card_text, b"", nonce, {"stale_data": True},
                                    timings)
            began = time.monotonic()
            card: Card | None = None
            try:
                card = self.cards.verify(card_text, accepted_types=("staff_card",) if staff else None)
            except CredentialError as exc:
                stage_done("card", began)
                reason = CARD_REASONS.get(exc.code, "CARD_INVALID")
                card_id = str(exc.details.get("card_id", ""))  # set only when the signature held
                return self._finish("DENY", [reason], card_id, card_text, b"", nonce, {"card": exc.code}, timings)
            stage_done("card", began)
            refusal = self.entries.refusal(card.card_id.hex()) if self.entries is not None and not staff else None
            if refusal is not None:
                return self._finish("DENY", ["ENTRY_LIMIT"], card.card_id.hex(), card_text, card.kid, nonce,
                                    {"card": "ok", "entries": refusal}, timings, prompts=[refusal])
            face_card: Card = card  # whose face is checked: the holder's, or a guardian's under a delegation
            acting: dict[str, str] = {}
            if not staff:
                if from_camera and delegation_text is None and self._face_mode(card) == "guardian":
                    # Where only a guardian may verify, keep reading for the second code (the delegation).
                    # Where either may, the camera path does not wait (it would eat the liveness frames): the
                    # holder verifies, and a guardian acting for a 14-17-year-old has the station's app send
                    # both codes.
                    emit("prompt", SHOW_DELEGATION)
                    delegation_text, _ = self._read_card(frames, check_time, skip=card_text)
                chosen = self._face_subject(card, delegation_text)
                if isinstance(chosen, str):
                    return self._finish("DENY", [chosen], card.card_id.hex(), card_text, card.kid, nonce,
                                        {"card": "ok", "delegation": chosen.lower()}, timings)
                face_card = chosen
                if chosen is not card:
                    acting = {"delegation": chosen.card_id.hex(),
                              "guardian_card": chosen.guardian_card.hex() if chosen.guardian_card else ""}

            began = time.monotonic()
            try:
                scorer = self.matcher.for_template(face_card.face.model_id)  # the other model: their shared part
                template = self.templates.get(face_card.card_id.hex(), commitment=face_card.face.template_sha256,
                                              model_id=face_card.face.model_id)
                self.templates.note_card_end(face_card.card_id.hex(), face_card.expires_at)
            except SecurityError as exc:
                stage_done("template", began)
                reason = "TEMPLATE_MISSING" if exc.code == "template_missing" else "TEMPLATE_MISMATCH"
                return self._finish("DENY", [reason], card.card_id.hex(), card_text, card.kid, nonce,
                                    {"card": "ok", "template": exc.code}, timings)
            stage_done("template", began)

            emit("face", "looking for the face")
            result, challenge, images, prompts = self._live_window(frames, check_time, nonce, emit, stage_done)
            checks: dict[str, object] = {"card": "ok", "liveness_score": round(result.score, 4), "liveness_method":
                                         "challenge" if challenge else "passive", "liveness_reasons": result.reasons}
            if challenge is not None:
                checks["challenge_attempts"] = challenge.attempt + 1
            if acting:
                checks["guardian_acted"] = acting
            if stale:
                checks["stale_data"] = True
            if not result.live:
                decision, reason = self._liveness_reason(result)
                if decision == "RETRY":
                    return Outcome("RETRY", [reason], card_id=card.card_id.hex(), timings=timings, prompts=prompts)
                return self._finish("DENY", [reason], card.card_id.hex(), card_text, card.kid, nonce, checks, timings,
                                    prompts=prompts, liveness=result.score)

            began = time.monotonic()
            emit("match", "comparing with the card holder")
            score = self._match(result, images, template, scorer)
            stage_done("match", began)
            threshold = scorer.threshold
            checks.update({"face_score": round(score, 4), "face_threshold": threshold,
                           "model": scorer.model.model_id})
            decision, reasons = ("ALLOW", ["OK"]) if score >= threshold else ("DENY", ["FACE_MISMATCH"])
            if decision == "ALLOW" and staff is not None:
                return self._override_token(staff, card, card_text, nonce, checks, timings, prompts, result.score,
                                            score)
            outcome = self._finish(decision, reasons, card.card_id.hex(), card_text, card.kid, nonce, checks, timings,
                                   prompts=prompts, liveness=result.score, score=score)
            if outcome.decision == "ALLOW" and outcome.token_id and self.entries is not None:
                # Only a signed ALLOW is an entry: one refused for want of a clock or storage uses none up.
                self.entries.record(card.card_id.hex())
                usable_until = min(card.expires_at, card.scope.window[1]) if card.scope.window else card.expires_at
                self.entries.remember_allow(outcome.token_id, card.card_id.hex(), card.card_type, usable_until)
            return outcome
        except SessionTimeout:
            return Outcome("RETRY", ["TIME_BUDGET"], timings=timings)
        except SessionCancelled:
            return Outcome("RETRY", ["CANCELLED"], timings=timings)
        finally:
            timings["total"] = round((time.monotonic() - start) * 1000.0, 2)

    def _face_mode(self, card: Card) -> str:
        """Whose face the site checks for this card's age band: "guardian", "either" or "holder" (cards
        without an age band: the holder's)."""
        return self.policy.face_policy.get(card.age_band, "holder") if card.age_band else "holder"

    def _face_subject(self, card: Card, delegation_text: str | None) -> Card | str:
        """The card whose face is checked (the child's card's own, or a guardian's delegation), or a reason."""
        mode = self._face_mode(card)
        if delegation_text is None:
            return "DELEGATION_REQUIRED" if mode == "guardian" else card
        if mode == "holder":
            return "DELEGATION_NOT_ACCEPTED"
        try:
            delegation = self.cards.verify(delegation_text, accepted_types=("delegation",))
        except CredentialError as exc:
            return {"card_expired": "DELEGATION_EXPIRED", "card_revoked": "DELEGATION_REVOKED"}.get(
                exc.code, "DELEGATION_INVALID")
        if delegation.acts_for != card.card_id:
            return "DELEGATION_MISMATCH"
        if delegation.guardian_card is not None and self.cards.revocations.is_revoked(delegation.guardian_card):
            return "DELEGATION_REVOKED"  # the guardian's own card was withdrawn
        return delegation

    def _override_token(self, link: OverrideLink, staff_card: Card, card_text: str, nonce: bytes, checks: dict,
                        timings: dict[str, float], prompts: list[str], liveness: float, score: float) -> Outcome:
        """The staff member was verified: sign the override, linked to the refused session, once."""
        staff_id = staff_card.card_id.hex()
        refusal = link.staff_limit(staff_id)
        if refusal is not None:
            return self._finish("DENY", ["RATE_LIMITED"], staff_id, card_text, staff_card.kid, nonce,
                                {**checks, "override": "staff_limit"}, timings, prompts=[refusal], liveness=liveness,
                                score=score)
        if self.entries is not None and self.entries.overridden(link.refused):
            return Outcome("DENY", ["ENTRY_LIMIT"], card_id=link.card_id, timings=timings,
                           prompts=["This refusal was already overridden"])
        override = {"refused": link.refused, "staff_card": staff_id, "reason": link.reason}
        outcome = self._finish("ALLOW", ["STAFF_OVERRIDE"], link.card_id, card_text, staff_card.kid, nonce,
                               {**checks, "override": override}, timings, prompts=prompts, liveness=liveness,
                               score=score)
        if outcome.decision == "ALLOW" and outcome.token_id and self.entries is not None:
            # Recorded once signed (sessions run one at a time on the session thread, so nothing comes between
            # the check above and this): an override the gate could not sign leaves the refusal open.
            self.entries.record_override(link.refused, staff_id)
            self.entries.record(link.card_id)
        return outcome

    def _is_delegation(self, text: str) -> bool:
        """A signed delegation (valid or not: a lapsed one is refused as a delegation later, with its reason)."""
        try:
            payload, _, kid, alg = self.cards.check_signature(text)
            return parse_claims(loads_exact(payload), kid=kid, alg=alg).card_type == "delegation"
        except Exception:  # not a card we can read: the card check below says why
            return False

    def _read_card(self, frames: Iterator[tuple[float, np.ndarray]], check_time: Callable[[], None],
                   skip: str | None = None) -> tuple[str | None, str | None]:
        """The first card's QR text in view (other than ``skip``) within the card timeout, and when there is
        none, what to tell the person: every eighth unreadable frame, the advisor looks for a visible but
        unreadable code. Codes that cannot be a card (no ``EHC1:`` prefix: a poster, a sticker, another
        app's code) are passed over, so one hanging in the camera's view does not refuse every session."""
        until = time.monotonic() + self.policy.card_timeout_s
        first_time: float | None = None
        advice: str | None = None
        other_code = False

        def wanted(code: QRCode) -> bool:
            return code.text.startswith(CARD_PREFIX) and code.text != skip

        for index, (t, frame) in enumerate(frames):
            check_time()
            first_time = t if first_time is None else first_time
            codes = self.qr.decode(frame, wanted=wanted)
            for code in codes:
                if wanted(code):
                    return code.text, None
            other_code = other_code or any(code.text != skip for code in codes)
            if index % 8 == 0:
                advice = self.advisor.advise(to_grey(frame), read=[code.corners for code in codes]) or advice
            if time.monotonic() > until or t - first_time > self.policy.card_timeout_s:
                break
        return None, advice or (NOT_A_CARD if other_code else None)

    def _card_id_if_signed(self, text: str) -> str:
        """The card id of a card whose signature verified but a later check failed (for the audit token)."""
        try:
            payload, _, _, _ = self.cards.check_signature(text)
            cti = loads_exact(payload).get(7)
            return cti.hex() if isinstance(cti, bytes) else ""
        except Exception:
            return ""

    def _live_window(self, frames: Iterator[tuple[float, np.ndarray]], check_time: Callable[[], None], nonce: bytes,
                     emit: EventSink, stage_done: Callable[[str, float], None]
                     ) -> tuple[LivenessResult, Challenge | None, list[np.ndarray | None], list[str]]:
        """Capture and decide liveness; with a challenge, ask again (up to ``challenge_retries`` times) when
        the person was moving at the prompt, or the answer was slow, too small, the wrong way or without the
        head's pivot (temporal.RETRY_HINTS says what the person is told, ``RETRY_SETTLE_S`` before the next
        window begins). A planar answer is not asked
        again: that is what artefacts do. Returns the last result, its challenge, its frames and every
        prompt shown."""
        challenge = Challenge.from_nonce(nonce) if self.policy.require_challenge else None
        prompts: list[str] = []
        while True:
            began = time.monotonic()
            detections, images = self._capture_window(frames, check_time, challenge, emit)
            stage_done("capture_detect", began)
            began = time.monotonic()
            result = self.liveness.decide(detections, images, challenge=challenge)
            stage_done("liveness", began)
            prompts += [challenge.prompt] if challenge else []
            if (challenge is None or result.live or challenge.attempt >= self.policy.challenge_retries
                    or result.reasons[0] not in RETRYABLE):
                return result, challenge, images, prompts + result.prompts
            # The failed answer counts towards the gate's failure limit as a session of its own would, so
            # a retry gives an attacker no attempts beyond max_failures.
            self.limiter.record(True)
            emit("retry", result.reasons[0])
            emit("prompt", RETRY_HINTS[result.reasons[0]])  # shown until the next challenge's own prompt
            challenge = Challenge.from_nonce(nonce, attempt=challenge.attempt + 1)
            settle(frames, check_time)

    def _capture_window(self, frames: Iterator[TimedFrame], check_time: Callable[[], None],
                        challenge: Challenge | None, emit: EventSink) -> Window:
        return capture_window(frames, self.faces.detector, check_time, challenge, emit,
                              liveness_frames=self.policy.liveness_frames)

    @staticmethod
    def _liveness_reason(result: LivenessResult) -> tuple[str, str]:
        first = result.reasons[0] if result.reasons else "liveness_failed"
        if result.failure_to_acquire:
            mapping = {"no_face": "NO_FACE", "face_changed": "FACE_CHANGED", "face_lost": "NO_FACE"}
            return "RETRY", mapping.get(first, "FACE_QUALITY")
        if first.startswith("challenge") and first != "challenge_required":
            return "DENY", "CHALLENGE_FAILED"
        return "DENY", "LIVENESS_FAILED"

    def _match(self, result: LivenessResult, images: list[np.ndarray | None], template: np.ndarray,
               scorer: FaceMatcher) -> float:
        """Embed the tracked face in its largest kept frames (up to 3), fuse the embeddings (the gate's face model's
        ``combine``: mean, SFace's part renormalised) and compare once, as ``scorer`` says (the card's model,
        or SFace on the part both share). Fusing rather than taking the best of
        three keeps genuine scores (live clip of the holder: minimum 0.670 either way) and lowers the impostor
        tail (12 live clips of other people against 20 portraits: highest 0.332 -> 0.323, 99th percentile
        0.265 -> 0.257; docs/THRESHOLDS.md)."""
        track = result.track
        assert track is not None
        kept = [(image, face) for index, face in zip(track.frame_indices, track.faces, strict=True)
                if (image := images[index]) is not None]
        order = sorted(kept, key=lambda pair: -pair[1].eye_distance)[:MATCH_FRAMES]
        vectors = [self.faces.embed_face(image, face).vector for image, face in order]
        return scorer.score(self.matcher.model.combine(vectors), template).similarity

    def _finish(self, decision: str, reasons: list[str], card_id: str, card_text: str, card_kid: bytes, nonce: bytes,
                checks: dict, timings: dict[str, float], *, prompts: list[str] | None = None,
                liveness: float = 0.0, score: float = 0.0) -> Outcome:
        began = time.monotonic()
        revocation_version = self.cards.revocations.version

        def sign(sequence: int) -> tuple[bytes, bytes]:
            return self.signer.sign(TokenContent(
                card_id=card_id, qr_text=card_text, card_kid=card_kid, nonce=nonce, decision=decision,
                reasons=reasons, checks=checks, site=self.policy.site, gate=self.policy.gate_id,
                revocation_version=revocation_version, sequence=sequence))

        threshold = float(checks.get("face_threshold", self.matcher.threshold))  # the card's model's, if scored
        outcome = Outcome(decision, reasons, card_id=card_id, match_score=score, match_threshold=threshold,
                          liveness_score=liveness, timings=timings, prompts=prompts or [])
        if not card_id:
            # No issuer vouched for this text: there is no card to audit, and signing would let anyone on
            # the network mint tokens (and fill the outbox) with junk. Refused, counted, not signed.
            return outcome
        try:
            token, token_id, _ = self.outbox.issue(sign, card_id=card_id, decision=decision,
                                                   reasons=",".join(reasons))
        except SecurityError as exc:
            log.error("no token: %s", exc.message, extra={"fields": {"code": exc.code}})
            outcome.decision = "DENY"
            outcome.reasons = [*(r for r in reasons if r != "OK"), "CLOCK_UNTRUSTED"] if exc.code == "clock_untrusted" \
                else reasons
            return outcome
        outcome.token, outcome.token_id = token, token_id.hex()
        timings["token"] = round((time.monotonic() - began) * 1000.0, 2)
        return outcome
