"""Pull the trust list, the revocation list and this device's templates from the registry.

A round applies trust and revocations first (persisted atomically with the sync time, see
edge.registry_client.state), then each template on its own: a template that does not unseal or is not a
finite unit-norm 128-d float32 vector is skipped and reported, and never stops the revocations of the
site from arriving. ``age_s`` says how long ago the last complete sync was; the pipeline compares it with
the site's staleness bound.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import EdgeError, RegistryUnavailable, SecurityError
from edge.registry_client.state import SyncedState, SyncedStateFile
from edge.registry_client.transport import RegistryTransport
from edge.security.sealing import unseal
from edge.security.templates import TemplateStore, check_template

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    trust_list: int
    revocations: int
    templates: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (card id, reason code)
    removed: int = 0  # templates deleted because their card ended (revoked, expired, withdrawn)
    written: int = 0  # templates stored because they were new or changed (the rest were already held)


def _revoked_by(revocations: RevocationList) -> Callable[[str], bool]:
    def revoked(card_id: str) -> bool:
        try:
            return revocations.is_revoked(bytes.fromhex(card_id))
        except ValueError:  # not a hex card id: no card of this format, so nothing the list can name
            return False
    return revoked


class Syncer:
    def __init__(self, transport: RegistryTransport, *, device_id: str, verifier: CardVerifier,
                 templates: TemplateStore, enc_key: x25519.X25519PrivateKey, state_dir: Path,
                 interval_s: float = 60.0, full_sync_every_s: float = 3600.0) -> None:
        """``full_sync_every_s``: in between, a sync asks for the templates only if the registry's version moved
        (most syncs: nothing to send); at least this often it takes the whole list again, which also repairs a
        record damaged on this device."""
        self.transport = transport
        self.full_sync_every_s = full_sync_every_s
        self._full_sync_due = 0.0
        self.device_id = device_id
        self.verifier = verifier
        self.templates = templates
        self.enc_key = enc_key
        self.store = SyncedStateFile(state_dir)
        self.interval_s = interval_s
        self.applied: SyncedState | None = self.store.load()
        if self.applied is not None:
            verifier.trust = self.applied.trust
            verifier.revocations = self.applied.revocations
        self.last_error = ""
        self._templates_version = 0  # of the last complete template sync (0: none since start)
        self._registry_cards: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def last_sync(self) -> float:
        return self.applied.synced_at if self.applied is not None else 0.0

    def age_s(self, now: float | None = None) -> float:
        """Seconds since the last complete sync (infinite when the device never synced)."""
        if self.applied is None:
            return float("inf")
        return (time.time() if now is None else now) - self.applied.synced_at

    def sync_once(self) -> SyncReport:
        held = self.applied
        _, trust_body = self.transport.trust_list(held.trust.version if held else 0)
        _, revocation_body = self.transport.revocations(held.revocations.version if held else 0)
        # None: the version this device holds is current (most syncs), so the list did not travel again.
        trust = held.trust if trust_body is None and held else \
            TrustList.from_json(json.loads(trust_body or "null"), "registry trust list")
        revocations = held.revocations if revocation_body is None and held else \
            RevocationList.from_json(json.loads(revocation_body or "null"), "registry revocation list")
        state = SyncedState(trust, revocations, time.time())
        self.store.save(state, self.applied)  # raises on a rollback; nothing is applied then
        self.verifier.trust = trust
        self.verifier.revocations = revocations
        self.applied = state
        report = SyncReport(trust.version, revocations.version, 0)
        now = time.time()
        known = self._templates_version if now < self._full_sync_due else 0
        synced = self.transport.templates(self.device_id, known)
        version, sent = synced.version, synced.templates
        if sent is None:  # nothing changed at the registry since the last complete sync
            report.templates = len(self._registry_cards)
            report.removed = self.templates.retain(self._registry_cards, _revoked_by(revocations))
            return report
        received = []
        for card_id, sealed, model_id in sent:
            try:
                received.append((card_id, check_template(unseal(self.enc_key, sealed, card_id.encode()), model_id),
                                 model_id))
            except EdgeError as exc:
                report.skipped.append((card_id[:64], exc.code))
        if report.skipped:  # one line a sync: a board whose keys were made again fails every template, every minute
            log.error("templates from the registry skipped", extra={"fields": {
                "skipped": len(report.skipped), "codes": dict(collections.Counter(c for _, c in report.skipped)),
                "card_ids": [card for card, _ in report.skipped[:5]]}})
        report.written = self.templates.put_from_registry(received)  # what is new or changed only
        report.templates = len(received)
        # The registry's list is complete (a failed call raised above): what it no longer sends has ended. A
        # record skipped as damaged this round, here or at the registry (withheld), is kept, not deleted.
        self._registry_cards = {card_id for card_id, _, _ in sent} | synced.withheld
        report.removed = self.templates.retain(self._registry_cards, _revoked_by(revocations))
        # A skipped record is asked for again at the next sync, in full, rather than taken as current.
        self._templates_version = 0 if report.skipped else version
        if known == 0:
            self._full_sync_due = now + self.full_sync_every_s
        if report.removed:
            log.warning("templates of ended cards deleted", extra={"fields": {"removed": report.removed}})
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
                self.last_error = ""
            except RegistryUnavailable as exc:
                self.last_error = exc.code
                log.warning("sync failed; working from the cache", extra={"fields": {"error": exc.code,
                                                                                      "age_s": self.age_s()}})
            except SecurityError as exc:
                self.last_error = exc.code
                log.error("sync refused", extra={"fields": {"error": exc.code, "detail": exc.message}})
            except Exception:
                self.last_error = "sync_failed"
                log.exception("sync round failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


__all__ = ["SyncReport", "Syncer"]
