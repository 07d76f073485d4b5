"""The registry's gRPC service and server.

Identity comes from mutual TLS: the client certificate's single Common Name is the caller (a registered
device id, or "admin"); a certificate with several CNs is refused (edge.security.identity). A device is
served only while it is active; suspending or retiring it refuses its certificate. With ``allow_plaintext``
(local development on loopback only, never the default) the caller is read from the ``x-edge-identity``
metadata instead, and may never claim "admin".

A device is trusted no further than its own site: it may store a template only for a card the registry
issued for that site, only the template the card commits to (SHA-256 of a finite, unit-norm 128-d float32
vector), and it delivers only its own tokens (registry.ingest).
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NoReturn, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric import ed25519
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge.config import DEVICE_ID_PATTERN
from edge.credential.issuer import CardIssuer
from edge.credential.keys import generate_issuer_key, load_private_pem, private_pem
from edge.credential.trust import RevocationList, TrustList, revocation_handle
from edge.errors import ConfigError, EdgeError, SecurityError
from edge.proto_gen.registry.v1 import registry_pb2 as rpb
from edge.proto_gen.registry.v1 import registry_pb2_grpc as rpb_grpc
from edge.security.identity import Identity, identity_from_pem, peer_certificate
from edge.security.keys import write_secret
from edge.security.sealing import load_or_create_x25519, raw_public, seal, unseal
from edge.security.templates import check_template
from edge.security.tls import CertificateLife, PeerCertificates, load_tls_files
from edge.vision.matcher import SFACE, face_model_by_id
from registry.bands import BandRefused, band_limit
from registry.escort import EscortPolicy, EscortRules
from registry.ingest import ingest_batch
from registry.interceptor import ErrorInterceptor
from registry.metrics import RegistryMetrics
from registry.refusals import Refused
from registry.storage import CardRecord, DeviceRecord, DeviceRefused, Storage
from registry.vaccination import history_bundle

log = logging.getLogger(__name__)
Row = TypeVar("Row")
ADMIN = "admin"
MAX_BATCH = 500
#: Entries per AuditHistory page at most (about 120 bytes each: well within gRPC's 4 MiB).
MAX_AUDIT_PAGE = 5000
#: A sealed template: 32-byte ephemeral key + 12-byte nonce + the template (512 bytes for sface, 1,024 for
#: sface+dlib) + 16-byte tag, and slack.
MAX_SEALED_TEMPLATE = 1536
#: Templates per SyncTemplates page at most: 2,000 fused (sface+dlib) templates are about 2.4 MB, under
#: gRPC's 4 MiB message limit.
MAX_TEMPLATE_PAGE = 2000
#: How far ahead of the registry's own a list version reported by a device is believed (a restore loses the
#: changes made since its backup; a compromised device must not push the versions towards int64's end).
MAX_VERSIONS_LOST = 1_000_000
CARD_ID = re.compile(r"^[0-9a-f]{32}$")
#: The registry's gRPC service, as health checks name it.
SERVICE_NAME = rpb.DESCRIPTOR.services_by_name["Registry"].full_name
DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
STATE_NAMES = {rpb.ACTIVE: "active", rpb.SUSPENDED: "suspended", rpb.RETIRED: "retired"}
STATE_VALUES = {v: k for k, v in STATE_NAMES.items()}


@dataclass
class RegistryState:
    """Everything the service needs: storage, the card issuer, the registry's template key."""

    storage: Storage
    issuer: CardIssuer
    state_dir: Path
    max_token_age_s: int = 14 * 86400
    #: Tokens a device may deliver per UTC day they were signed (registry/ingest.py; 0: no cap).
    max_tokens_per_device_day: int = 100_000
    escort_policies: dict[str, EscortPolicy] = field(default_factory=dict)
    #: A revoked card leaves the revocation list once it has been expired this long (seconds): every gate
    #: refuses it as expired by then, and the list, which each gate fetches whole at every sync, stays the
    #: size of the revocations of living cards. The margin covers a gate whose clock runs behind.
    revocation_grace_s: float = 30 * 86400.0
    #: The newest version of each list a device reported holding (GetTrustList/GetRevocations), when newer than
    #: the registry's own: the sign of a database restored from an older backup (``reissue_lists``).
    newest_held: dict[str, int] = field(default_factory=dict)
    #: Devices whose client certificate is about to expire are logged (edge.security.tls.PeerCertificates).
    device_certificates: PeerCertificates = field(default_factory=lambda: PeerCertificates(log))
    #: Counted always, served with ``--metrics-address`` (registry/metrics.py).
    metrics: RegistryMetrics = field(default_factory=RegistryMetrics)
    #: When each device's last call was written (monotonic), so a sync a minute does not write a row a minute.
    _seen_written: dict[str, float] = field(default_factory=dict)
    SEEN_EVERY_S: ClassVar[float] = 60.0

    def note_seen(self, device_id: str, certificate_not_after: float | None) -> None:
        """A device called: log its certificate if it ends soon (daily at most), and keep its last call and
        certificate end for ListDevices (written at most once a minute)."""
        if certificate_not_after is not None:
            self.device_certificates.seen(device_id, certificate_not_after)
        now = time.monotonic()
        if now - self._seen_written.get(device_id, -self.SEEN_EVERY_S) < self.SEEN_EVERY_S:
            return
        self._seen_written[device_id] = now
        self.storage.device_seen(device_id, time.time(), certificate_not_after)

    @classmethod
    def open(cls, storage: Storage, state_dir: Path, issuer_name: str = "central-registry") -> RegistryState:
        missing = [name for name in ("issuer_key.pem", "template_key.pem") if not (state_dir / name).exists()]
        if missing and (storage.document("trust_list") is not None or storage.template_count()):
            # New keys here would orphan every card issued (signed by a key no gate trusts) and every stored
            # template (sealed to a key gone), and each gate's next sync would delete all its templates.
            raise ConfigError(f"the registry database was made with keys that are not in {state_dir} (missing: "
                              f"{', '.join(missing)}); restore that folder from the old server or its backup. "
                              "No new keys were made", key="state")
        state_dir.mkdir(parents=True, exist_ok=True)
        key_path = state_dir / "issuer_key.pem"
        if not key_path.exists():
            write_secret(key_path, private_pem(generate_issuer_key("ES256")))
        key = load_private_pem(key_path.read_bytes())
        state = cls(storage, CardIssuer(key, issuer_name), state_dir)
        if storage.document("trust_list") is None:
            trust = TrustList(version=1)
            trust.add(issuer_name, key.public_key())
            storage.put_document("trust_list", 1, json.dumps(trust.to_json()))
        if storage.document("revocations") is None:
            storage.put_document("revocations", 1, json.dumps(RevocationList(version=1).to_json()))
        load_or_create_x25519(state_dir, "template_key.pem")
        return state

    @property
    def template_public_key(self) -> bytes:
        return raw_public(load_or_create_x25519(self.state_dir, "template_key.pem").public_key())

    def revoke(self, card_id: bytes, reason: str = "revoked") -> tuple[int, bool]:
        """Add the card to the revocation list (a new version); (version, whether it was revoked already)."""
        with self.storage.atomic():
            version, body = self.storage.document("revocations") or (0, json.dumps(RevocationList().to_json()))
            revocations = RevocationList.from_json(json.loads(body))
            if revocations.is_revoked(card_id) or self.storage.is_revoked(card_id.hex()):
                return version, True
            revocations.revoke(card_id)
            for ended in self.storage.revoked_cards_expired_before(time.time() - self.revocation_grace_s):
                revocations.hashes.discard(revocation_handle(bytes.fromhex(ended)))
            revocations.version = version + 1
            self.storage.put_document("revocations", revocations.version, json.dumps(revocations.to_json()))
            self.storage.record_revocation(card_id.hex(), reason)
            self.storage.delete_ended_templates()  # the card's face template goes with it
        return revocations.version, False


    def apply_retention(self, keep_days: int) -> None:
        """Delete the records older than ``keep_days`` (0: keep them; Storage.prune_records); a failure is
        logged and tried again at the next call (daily)."""
        if not keep_days:
            return
        try:
            deleted = self.storage.prune_records(int(time.time() - keep_days * 86400))
        except Exception:
            log.exception("retention failed")
            return
        if any(deleted.values()):
            log.warning("records past the retention deleted", extra={"fields": {**deleted, "keep_days": keep_days}})

    def reissue_lists(self, above: int = 0) -> dict[str, int]:
        """Write the trust and revocation lists again, unchanged, with versions above ``above`` and above what
        any device reported holding: after a restore from an older backup the gates refuse lower versions as a
        rollback. Make the revocations lost with the backup again first. Returns the new versions."""
        versions = {}
        with self.storage.atomic():
            for name in ("trust_list", "revocations"):
                version, body = self.storage.document(name) or (0, "{}")
                if above > version + MAX_VERSIONS_LOST:  # the bound a device's report is believed to, too
                    raise ValueError(f"no restore loses {above - version} versions of the {name}; is {above} a "
                                     "version a gate reported?")
                raw = json.loads(body)
                new = max(version, above, self.newest_held.get(name, 0)) + 1
                raw["version"] = new
                self.storage.put_document(name, new, json.dumps(raw))
                versions[name] = new
        self.newest_held.clear()
        return versions


def one_page(read: Callable[[int | None], list[Row]], limit: int | None) -> tuple[list[Row], bool]:
    """A page of at most ``limit`` rows (None: all of them) from ``read(n)``, which returns the first ``n``, and
    whether another page follows: one row more than the page is read to tell."""
    if limit is None:
        return read(None), False
    rows = read(limit + 1)
    return rows[:limit], len(rows) > limit


def refuse_with(context: grpc.ServicerContext, status: grpc.StatusCode, reason: str, message: str) -> NoReturn:
    """End the call with ``status``, the reason code in the ``edge-reason`` trailer and ``message``."""
    context.set_trailing_metadata((("edge-reason", reason),))
    context.abort(status, message)
    raise AssertionError("abort raises")


def face_model_id(context: grpc.ServicerContext, model_id: str) -> str:
    """The face model a new card commits to: SFace's when none is given, else one the gates know. A card
    naming any other model could never be verified (TEMPLATE_MISMATCH at every gate), so it is not issued."""
    if not model_id:
        return SFACE.model_id
    try:
        return face_model_by_id(model_id).model_id
    except SecurityError:
        refuse_with(context, grpc.StatusCode.INVALID_ARGUMENT, "model_unknown",
                    f"unknown face model id {model_id[:64]!r}: no gate could verify a card that names it")


def refuse(context: grpc.ServicerContext, refusal: Refused) -> NoReturn:
    """End the call for a refusal of the registry's parts (registry/refusals.py)."""
    refuse_with(context, grpc.StatusCode.INVALID_ARGUMENT if refusal.invalid_argument else
                grpc.StatusCode.FAILED_PRECONDITION, refusal.code, refusal.message)


def caller(context: grpc.ServicerContext, allow_plaintext: bool) -> Identity | None:
    """The caller: the certificate's one CN and role URI; in plaintext development mode, the claimed device id."""
    pem = peer_certificate(context)
    if pem is not None:
        return identity_from_pem(pem)
    if allow_plaintext:
        claimed = dict(context.invocation_metadata()).get("x-edge-identity")
        return Identity(claimed, None, "plaintext") if isinstance(claimed, str) and claimed != ADMIN else None
    return None


class RegistryServicer(rpb_grpc.RegistryServicer):
    def __init__(self, state: RegistryState, *, allow_plaintext: bool = False) -> None:
        self.state = state
        self.allow_plaintext = allow_plaintext
        self.escort = EscortRules(state, state.escort_policies)

    def _require(self, context: grpc.ServicerContext, *, admin: bool = False, hospital: bool = False) -> str:
        """The caller's name, or abort. ``admin``: operators only; ``hospital``: the hospital system or an
        operator; neither: a registered, active device (or an operator)."""
        try:
            identity = caller(context, self.allow_plaintext)
        except EdgeError as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise AssertionError("abort raises") from exc
        if identity is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
            raise AssertionError("abort raises")
        is_admin = identity.via == "mtls" and (identity.name == ADMIN or identity.role == "operator")
        who = ADMIN if is_admin else identity.name
        if hospital:
            if not is_admin and not (identity.via == "mtls" and identity.role == "hospital"):
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "the hospital system or an operator only")
            return who
        if admin and not is_admin:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "admin only")
        if not admin and not is_admin:
            device = self.state.storage.device(who)
            if device is None:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who} is not a registered device")
            elif device.state != "active":
                context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who} is {device.state}")
            self.state.note_seen(str(who), identity.not_after)
        return str(who)

    def RegisterDevice(self, request, context):
        self._require(context, admin=True)
        if len(request.signing_key) != 32 or len(request.encryption_key) != 32 or \
                not DEVICE_ID.match(request.device_id) or not 0 < len(request.site) <= 128:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "device_id ([A-Za-z0-9._-], at most 64), a site, 32-byte "
                          "signing and encryption keys needed")
        try:
            self.state.storage.register_device(DeviceRecord(request.device_id, request.signing_key,
                                                            request.encryption_key, request.site))
        except DeviceRefused as exc:
            refuse(context, exc)
        return rpb.RegisterDeviceResponse(key_id=hashlib.sha256(request.signing_key).digest()[:8].hex())

    def IssueCard(self, request, context):
        self._require(context, admin=True)
        if request.card_type == "delegation":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "delegations are issued with IssueDelegation")
        if request.card_type == "escort_permit":  # one per admitted patient, ended at discharge: never minted alone
            refuse_with(context, grpc.StatusCode.INVALID_ARGUMENT, "escort_needs_admission",
                        "escort permits are issued with IssueEscortPermit, for an admitted patient under the site's "
                        "rules")
        if request.card_type == "vaccination_appointment" and not request.holder:
            refuse_with(context, grpc.StatusCode.INVALID_ARGUMENT, "holder_required",
                        "a vaccination appointment names its person (the 16-byte holder pseudonym): without it the "
                        "vaccination cannot be found with the person's others (ImmunizationHistory)")
        now = int(time.time())
        valid_for_s = request.valid_for_s or 365 * 86400
        try:
            limit = band_limit(request.age_band or None, request.age_band_until, now)
            if limit is not None:
                valid_for_s = min(valid_for_s, limit - now)
            if not 0 < len(request.site) <= 128:
                raise ValueError("a card names its site (1-128 characters; '*' for every site)")
            if bool(request.window_start) != bool(request.window_end):
                raise ValueError("give both window_start and window_end, or neither")
            window = (int(request.window_start), int(request.window_end)) if request.window_start else None
            if window is not None and window[1] <= now:
                raise ValueError("the appointment window has already ended")
            text, card = self.state.issuer.issue(
                card_type=request.card_type, holder=request.holder or os.urandom(16), site=request.site,
                ward=request.ward or None, station=request.station or None, now=now, window=window,
                valid_for_s=valid_for_s, template_sha256=request.template_sha256,
                model_id=face_model_id(context, request.model_id), age_band=request.age_band or None)
        except BandRefused as exc:
            refuse(context, exc)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        self._note_site_without_devices(request.site, request.card_type)
        self.state.storage.put_card(CardRecord(
            card_id=card.card_id.hex(), site=request.site, card_type=request.card_type,
            commitment=request.template_sha256, model_id=card.face.model_id, issued=float(card.issued_at),
            expires=float(card.expires_at), holder=card.holder.hex(), age_band=card.age_band))
        return rpb.IssueCardResponse(card_id=card.card_id.hex(), qr_text=text, expires_at=card.expires_at)

    def IssueDelegation(self, request, context):
        self._require(context, hospital=True)
        child = self.state.storage.card(request.child_card_id) if CARD_ID.match(request.child_card_id) else None
        if child is None or child.card_type == "delegation":
            context.abort(grpc.StatusCode.NOT_FOUND, "the registry issued no such child's card")
            raise AssertionError("abort raises")
        if child.age_band == "adult":
            refuse_with(context, grpc.StatusCode.FAILED_PRECONDITION, "holder_is_adult",
                        "an adult's card takes no guardian")
        now = int(time.time())
        if self.state.storage.is_revoked(child.card_id) or child.expires <= now:
            refuse_with(context, grpc.StatusCode.FAILED_PRECONDITION, "card_ended",
                        "the child's card was revoked or has expired: issue the delegation for its new card")
        until = min(int(request.valid_until or 0), int(child.expires))
        if until <= now or len(request.template_sha256) != 32:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a future valid_until and the guardian's 32-byte face "
                                                            "commitment are needed")
        guardian = None
        if request.guardian_card_id:  # recorded so that revoking the guardian's own card ends the delegation
            known = self.state.storage.card(request.guardian_card_id) if CARD_ID.match(request.guardian_card_id) \
                else None
            if known is None or known.card_type == "delegation":
                context.abort(grpc.StatusCode.NOT_FOUND, "the registry issued no such guardian card (card ids are 32 "
                                                         "lowercase hex characters)")
                raise AssertionError("abort raises")
            if self.state.storage.is_revoked(request.guardian_card_id) or known.expires <= now:
                refuse_with(context, grpc.StatusCode.FAILED_PRECONDITION, "card_ended",
                            "the guardian's own card was revoked or has expired: no delegation rests on it")
            guardian = bytes.fromhex(request.guardian_card_id)
        try:
            text, card = self.state.issuer.issue(
                card_type="delegation", holder=request.holder or os.urandom(16), site=child.site,
                template_sha256=request.template_sha256, model_id=face_model_id(context, request.model_id),
                valid_for_s=until - now, now=now, acts_for=bytes.fromhex(child.card_id), guardian_card=guardian)
        except ValueError as exc:  # what the card format does not allow (a holder that is not 16 bytes)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        storage = self.state.storage
        storage.put_card(CardRecord(card_id=card.card_id.hex(), site=child.site, card_type="delegation",
                                    commitment=request.template_sha256, model_id=card.face.model_id, issued=now,
                                    expires=float(card.expires_at), holder=card.holder.hex(), age_band="adult"))
        storage.put_delegation(card.card_id.hex(), child.card_id, card.holder.hex(), float(card.expires_at))
        return rpb.IssueDelegationResponse(card_id=card.card_id.hex(), qr_text=text, expires_at=card.expires_at)

    def ImmunizationHistory(self, request, context):
        self._require(context, hospital=True)
        card = self.state.storage.card(request.card_id) if CARD_ID.match(request.card_id) else None
        if card is None or card.holder is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such card")
            raise AssertionError("abort raises")
        bundle = history_bundle(self.state.storage, card.holder)
        return rpb.Document(version=len(bundle.get("entry", [])), json=json.dumps(bundle))

    def StoreTemplate(self, request, context):
        who = self._require(context)
        if not CARD_ID.match(request.card_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "card_id must be 32 lowercase hex characters")
        if len(request.sealed_template) > MAX_SEALED_TEMPLATE or len(request.model_id) > 64:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sealed template or model id too large")
        card = self.state.storage.card(request.card_id)
        if card is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "the registry issued no card with this id")
            raise AssertionError("abort raises")
        if self.state.storage.is_revoked(card.card_id) or card.expires <= time.time():
            refuse_with(context, grpc.StatusCode.FAILED_PRECONDITION, "card_ended",
                        "the card was revoked or has expired: no template is kept for it")
        if card.age_band == "child":  # infants' faces change within months; a guardian's face is checked instead
            refuse_with(context, grpc.StatusCode.FAILED_PRECONDITION, "no_child_template",
                        "no face template is kept for a child under 14")
        device = self.state.storage.device(who)
        if who != ADMIN and (device is None or card.site != device.site):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "the card belongs to another site")
        key = load_or_create_x25519(self.state.state_dir, "template_key.pem")
        try:
            template = unseal(key, request.sealed_template, request.card_id.encode())
            check_template(template, request.model_id)
        except SecurityError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        commitment = hashlib.sha256(template).digest()
        if commitment != card.commitment or request.model_id != card.model_id:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the template is not the one the card commits to")
        self.state.storage.put_template(request.card_id, request.sealed_template, request.model_id, commitment,
                                        card.site)
        return rpb.StoreTemplateResponse(template_sha256=commitment)

    def SyncTemplates(self, request, context):
        who = self._require(context)
        device = self.state.storage.device(request.device_id or who)
        if device is None or (who != ADMIN and device.device_id != who):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "a device syncs its own templates only")
            raise AssertionError("abort raises")
        if len(request.after_card_id) > 64:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after_card_id is a card id")
        key = load_or_create_x25519(self.state.state_dir, "template_key.pem")
        if not request.after_card_id:  # once per sync round: its first page, or the whole list
            removed = self.state.storage.delete_ended_templates()  # expired cards' templates, at the next sync
            if removed:
                log.warning("templates of ended cards deleted", extra={"fields": {"removed": removed}})
        version = self.state.storage.templates_version(device.site)  # after the purge, before the templates
        if request.known_version and request.known_version == version and not request.after_card_id:
            return rpb.SyncTemplatesResponse(version=version, unchanged=True)
        limit = min(request.limit, MAX_TEMPLATE_PAGE) if request.limit else None
        rows, more = one_page(lambda n: self.state.storage.templates_for_site(
            device.site, after=request.after_card_id, limit=n), limit)
        out, withheld = [], []
        codes: collections.Counter = collections.Counter()
        for card_id, sealed, model_id in rows:
            try:  # one unreadable record must not stop the site's sync, nor make the gates delete theirs
                template = check_template(unseal(key, sealed, card_id.encode()), model_id).astype("<f4").tobytes()
            except SecurityError as exc:
                codes[exc.code] += 1
                withheld.append(card_id)
                continue
            out.append(rpb.SealedTemplate(card_id=card_id, model_id=model_id,
                                          sealed_template=seal(device.encryption_key, template, card_id.encode())))
        if withheld:  # one line a page: a registry restored with another template key fails every record
            log.error("stored templates skipped", extra={"fields": {
                "device": device.device_id, "skipped": len(withheld), "codes": dict(codes), "card_ids": withheld[:5]}})
        return rpb.SyncTemplatesResponse(templates=out, more=more, version=version, withheld_card_ids=withheld)

    def _document(self, name: str, known_version: int, who: str) -> rpb.Document:
        """The list, or only its version when the device holds it already (every gate asks each minute)."""
        version, body = self.state.storage.document(name) or (0, "{}")
        if known_version and known_version == version:
            return rpb.Document(version=version, unchanged=True)
        newest = self.state.newest_held.get(name, 0)
        if version < known_version <= version + MAX_VERSIONS_LOST and known_version > newest:
            self.state.newest_held[name] = known_version
            log.error("a device holds a newer list than this registry: was its database restored from a backup? "
                      "Make the revocations lost with it again, then `edge registry reissue-lists`",
                      extra={"fields": {"list": name, "device": who, "device_version": known_version,
                                        "registry_version": version}})
        return rpb.Document(version=version, json=body)

    def GetTrustList(self, request, context):
        who = self._require(context)
        return self._document("trust_list", request.known_version, who)

    def GetRevocations(self, request, context):
        who = self._require(context)
        return self._document("revocations", request.known_version, who)

    def ReissueLists(self, request, context):
        self._require(context, admin=True)
        if request.above < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "above is a version, 0 or more")
        try:
            versions = self.state.reissue_lists(request.above)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("abort raises") from exc
        log.warning("lists reissued", extra={"fields": versions})
        return rpb.ReissueListsResponse(trust_list_version=versions["trust_list"],
                                        revocation_list_version=versions["revocations"])

    def IngestTokens(self, request, context):
        who = self._require(context)
        if len(request.tokens) > MAX_BATCH:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"at most {MAX_BATCH} tokens per call")
        results = []
        outcomes = ingest_batch(self.state.storage, list(request.tokens), peer_device=None if who == ADMIN else who,
                                max_age_s=self.state.max_token_age_s,
                                max_per_device_day=self.state.max_tokens_per_device_day)
        rejected: collections.Counter = collections.Counter()
        examples: list[str] = []
        for outcome in outcomes:
            self.state.metrics.delivered(who, outcome.status, outcome.reason)
            status = {"stored": rpb.STORED, "duplicate": rpb.DUPLICATE}.get(outcome.status, rpb.REJECTED)
            if outcome.status == "rejected":
                rejected[outcome.reason] += 1
                examples += [outcome.token_id[:64]] if len(examples) < 5 else []
            results.append(rpb.IngestResult(token_id=outcome.token_id, status=status, reason=outcome.reason))
        # One line per call, never per token: a device sending 500 junk tokens a call would otherwise write 500
        # lines, and journald's rate limit would then drop every other line of the registry's with them.
        capped = rejected.pop("device_rate", 0)
        if capped:
            log.error("device over its daily token cap: compromised, or the cap is too low for it", extra={
                "fields": {"device": who, "refused": capped, "cap": self.state.max_tokens_per_device_day}})
        if rejected:
            log.warning("tokens rejected", extra={"fields": {"device": who, "reasons": dict(rejected),
                                                             "token_ids": examples}})
        return rpb.IngestTokensResponse(results=results)

    def RevokeCard(self, request, context):
        self._require(context, admin=True)
        if not CARD_ID.match(request.card_id) or len(request.reason) > 200:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "card_id must be 32 lowercase hex characters")
        if self.state.storage.card(request.card_id) is None:  # a mistyped id must not read as "revoked"
            refuse_with(context, grpc.StatusCode.NOT_FOUND, "card_unknown",
                        "this registry issued no card with that id; nothing revoked")
        version, already = self.state.revoke(bytes.fromhex(request.card_id), request.reason or "revoked")
        self.state.storage.end_permit(request.card_id, "staff", time.time())  # an escort permit ends too
        log.warning("card revoked", extra={"fields": {"card_id": request.card_id, "version": version}})
        return rpb.RevokeCardResponse(revocation_list_version=version, already_revoked=already)

    def SetDeviceState(self, request, context):
        self._require(context, admin=True)
        state = STATE_NAMES.get(request.state)
        if state is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "state must be ACTIVE, SUSPENDED or RETIRED")
            raise AssertionError("abort raises")
        try:
            device = self.state.storage.set_device_state(request.device_id, state)
        except ValueError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        if device is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such device")
            raise AssertionError("abort raises")
        return rpb.SetDeviceStateResponse(state=STATE_VALUES[device.state], since=device.state_since or 0.0)

    def ListDevices(self, request, context):
        self._require(context, admin=True)
        return rpb.ListDevicesResponse(devices=[rpb.DeviceEntry(
            device_id=d.device_id, site=d.site, state=STATE_VALUES[d.state], state_since=d.state_since or 0.0,
            registered=d.registered, key_id=d.key_id, last_seen=d.last_seen or 0.0,
            certificate_not_after=d.certificate_not_after or 0.0) for d in self.state.storage.device_statuses(
                request.site)])

    def RotateDeviceKey(self, request, context):
        self._require(context, admin=True)
        if len(request.signing_key) != 32 or len(request.encryption_key) != 32:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "32-byte signing and encryption keys needed")
        device = self.state.storage.device(request.device_id)
        if device is None or device.state == "retired":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such active device")
        try:
            self.state.storage.rotate_key(request.device_id, request.signing_key, request.encryption_key)
        except DeviceRefused as exc:
            refuse(context, exc)
        return rpb.RegisterDeviceResponse(key_id=hashlib.sha256(request.signing_key).digest()[:8].hex())

    # -- admissions and escort permits (registry/escort.py) ---------------------------------------------
    def _escort(self, context: grpc.ServicerContext, action):
        try:
            return action(self.escort)
        except Refused as exc:  # the escort rules' and the age band's (registry/bands.py)
            refuse(context, exc)

    def _admission_reply(self, patient_id: str, ended: list[str]) -> rpb.AdmissionResponse:
        admission = self.state.storage.admission(patient_id)
        version = (self.state.storage.document("revocations") or (0, ""))[0]
        return rpb.AdmissionResponse(patient_id=patient_id, ward=admission.ward if admission else "",
                                     ended_permits=ended, revocation_list_version=version)

    def AdmitPatient(self, request, context):
        self._require(context, hospital=True)
        self._escort(context, lambda e: e.admit(request.patient_id, request.site, request.ward, request.expected_days))
        self._note_site_without_devices(request.site, "admission")
        return self._admission_reply(request.patient_id, [])

    def _note_site_without_devices(self, site: str, what: str) -> None:
        """Site ids are free text: a typo gives cards every gate refuses (card_scope). A site's gates may be
        registered later, so this is said, not refused."""
        if site != "*" and not self.state.storage.devices_at(site):
            log.warning("no device is registered for this site: its gates will refuse what was issued if the "
                        "site id is misspelt", extra={"fields": {"site": site[:128], "issued": what}})

    def TransferPatient(self, request, context):
        self._require(context, hospital=True)
        ended = self._escort(context, lambda e: e.transfer(request.patient_id, request.ward))
        return self._admission_reply(request.patient_id, ended)

    def UpdateAdmission(self, request, context):
        self._require(context, hospital=True)
        self._escort(context, lambda e: e.update(request.patient_id, request.expected_days))
        return self._admission_reply(request.patient_id, [])

    def DischargePatient(self, request, context):
        self._require(context, hospital=True)
        ended = self._escort(context, lambda e: e.discharge(request.patient_id))
        log.warning("patient discharged", extra={"fields": {"permits_ended": len(ended)}})
        return self._admission_reply(request.patient_id, ended)

    def IssueEscortPermit(self, request, context):
        self._require(context, hospital=True)
        if request.age_band and request.age_band not in ("child", "minor", "adult"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "age_band is child, minor or adult")
        if request.holder and len(request.holder) != 16:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "holder is a 16-byte pseudonym")
        permit = self._escort(context, lambda e: e.issue(
            patient_id=request.patient_id, template_sha256=request.template_sha256,
            model_id=face_model_id(context, request.model_id), age_band=request.age_band or None,
            condition_until=request.condition_until or None, replace=request.replace,
            holder=request.holder or None, age_band_until=request.age_band_until))
        return rpb.IssueEscortPermitResponse(card_id=permit.card_id, qr_text=permit.qr_text,
                                             expires_at=permit.expires_at, replaced=permit.replaced)

    def AuditHistory(self, request, context):
        self._require(context, admin=True)
        if not CARD_ID.match(request.card_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "card_id must be 32 lowercase hex characters")
        after = None
        if request.after:
            try:
                iat, device_id, sequence, token_id = json.loads(request.after)
                after = (int(iat), str(device_id), int(sequence), str(token_id))
            except (ValueError, TypeError):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after must be a next_page from a previous answer")
        tokens, more = one_page(lambda n: self.state.storage.history(request.card_id, after=after, limit=n),
                                min(request.limit, MAX_AUDIT_PAGE) if request.limit else None)
        last = tokens[-1] if more else None
        next_page = json.dumps([last.iat, last.device_id, last.sequence, last.token_id]) if last else ""
        entries = [rpb.AuditEntry(token_id=t.token_id, device_id=t.device_id, iat=t.iat, decision=t.decision,
                                  reasons=t.reasons, sequence=t.sequence, site=t.site, gate=t.gate) for t in tokens]
        return rpb.AuditHistoryResponse(entries=entries, next_page=next_page)


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, folder: Path, name: str) -> TLSFiles:
        return cls(folder / "ca.pem", folder / f"{name}.pem", folder / f"{name}.key")


class RegistryServer:
    def __init__(self, state: RegistryState, *, tls: TLSFiles | None, allow_plaintext: bool = False) -> None:
        if tls is None and not allow_plaintext:
            raise ValueError("the registry needs TLS files, or allow_plaintext for local development")
        self.started = time.time()
        self.state = state
        self.tls = tls
        # No SO_REUSEPORT: a second registry on the same port (another database) must fail to start instead of
        # taking half of the devices' connections.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=[ErrorInterceptor()],
                                  options=[("grpc.so_reuseport", 0)])
        rpb_grpc.add_RegistryServicer_to_server(RegistryServicer(state, allow_plaintext=tls is None), self.server)
        # The standard gRPC health service, SERVING while the database answers (probed every PROBE_EVERY_S), so
        # a load balancer, a supervisor or `grpc_health_probe` sees a registry that cannot reach its database.
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._set_serving(False)
        self._stop_probe = threading.Event()
        self._probe: threading.Thread | None = None
        self.port: int | None = None
        self.tls_lives: tuple[CertificateLife, ...] = ()

    #: Seconds between database probes for the health service.
    PROBE_EVERY_S = 5.0

    def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def _probe_loop(self) -> None:
        serving: bool | None = None
        while True:
            reachable = self.state.storage.reachable()
            self.state.metrics.database_up.set(float(reachable))
            if reachable != serving:
                self._set_serving(reachable)
                if serving is not None or not reachable:
                    log.warning("registry health", extra={"fields": {"serving": reachable,
                                                                     "database": "reachable" if reachable
                                                                     else "unreachable"}})
                serving = reachable
            if self._stop_probe.wait(self.PROBE_EVERY_S):
                return

    def start(self, address: str = "127.0.0.1:0") -> int:
        if self.tls is not None:
            files = load_tls_files(self.tls.ca, self.tls.cert, self.tls.key, setting="--tls-dir", role="registry")
            self.tls_lives = files.lives
            credentials = files.server_credentials()
            self.port = self.server.add_secure_port(address, credentials)
        else:
            host = address.rsplit(":", 1)[0].strip("[]")
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise ValueError(f"plaintext is for local development: bind 127.0.0.1, not {host}")
            log.warning("registry running WITHOUT TLS (development only; no admin calls)")
            self.port = self.server.add_insecure_port(address)
        self.server.start()
        self._probe = threading.Thread(target=self._probe_loop, name="registry-health", daemon=True)
        self._probe.start()
        return self.port

    def stop(self, grace: float = 2.0) -> None:
        self._stop_probe.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self._probe is not None:
            self._probe.join(10.0)
        self.state.metrics.close()
        self.state.storage.close()


def device_record_for(device_id: str, signing_key: ed25519.Ed25519PublicKey | bytes, encryption_key: bytes,
                      site: str) -> DeviceRecord:
    raw = signing_key if isinstance(signing_key, bytes) else signing_key.public_bytes_raw()
    return DeviceRecord(device_id, raw, encryption_key, site)
