"""Pull the trust list, the revocation list and this device's templates from the registry.

Templates arrive sealed to the device's X25519 key and are stored encrypted at rest. ``age_s`` says how
long ago the last complete sync succeeded; the pipeline compares it with the site's staleness bound.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric import x25519

from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import RegistryUnavailable, SecurityError
from edge.registry_client.transport import RegistryTransport
from edge.security.sealing import unseal
from edge.security.templates import TemplateStore

log = logging.getLogger(__name__)


class Syncer:
    def __init__(self, transport: RegistryTransport, *, device_id: str, verifier: CardVerifier,
                 templates: TemplateStore, enc_key: x25519.X25519PrivateKey, state_dir: Path,
                 interval_s: float = 60.0) -> None:
        self.transport = transport
        self.device_id = device_id
        self.verifier = verifier
        self.templates = templates
        self.enc_key = enc_key
        self.state_file = state_dir / "last_sync"
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def last_sync(self) -> float:
        try:
            return float(self.state_file.read_text())
        except (OSError, ValueError):
            return 0.0

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.last_sync

    def sync_once(self) -> dict:
        _, trust_body = self.transport.trust_list()
        revocation_version, revocation_body = self.transport.revocations()
        trust = TrustList.from_json(json.loads(trust_body), "registry trust list")
        revocations = RevocationList.from_json(json.loads(revocation_body), "registry revocation list")
        stored = 0
        for card_id, sealed, model_id in self.transport.templates(self.device_id):
            try:
                data = unseal(self.enc_key, sealed, card_id.encode())
            except SecurityError as exc:
                log.error("sealed template refused", extra={"fields": {"card_id": card_id, "code": exc.code}})
                continue
            self.templates.put(card_id, np.frombuffer(data, dtype="<f4"), model_id)
            stored += 1
        self.verifier.trust = trust
        self.verifier.revocations = revocations
        self.state_file.write_text(str(time.time()))
        return {"trust_list": trust.version, "revocations": revocation_version, "templates": stored}

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except RegistryUnavailable as exc:
                log.warning("sync failed; working from the cache", extra={"fields": {"error": exc.code,
                                                                                      "age_s": round(self.age_s())}})
            except Exception:
                log.exception("sync round failed")
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edge-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
