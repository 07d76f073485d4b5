"""On-device template store: embeddings encrypted at rest with AES-256-GCM, keyed by card id.

Each record is ``nonce(12) || AES-GCM(key, template float32 bytes, aad = card id || model id)``, so a
record copied to another card id fails authentication. The face commitment in a card is
SHA-256(template float32 bytes); ``get`` checks it against the card before the template is used. The
storage key lives in a 0600 file beside the device key. SQLite (WAL) holds the records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.errors import SecurityError
from edge.security.keys import read_secret, write_secret
from edge.sqlite_schema import open_versioned, write_transaction
from edge.vision.matcher import SFACE, face_model_by_id

log = logging.getLogger(__name__)

STORE_KEY_FILE = "template_store.key"
MIGRATIONS = [
    ["CREATE TABLE IF NOT EXISTS templates (card_id TEXT PRIMARY KEY, model_id TEXT NOT NULL, "
     "sealed BLOB NOT NULL, updated REAL NOT NULL)"],
    # Where a template came from: enrolled on this device, or sent by the registry (which then decides how
    # long it stays). Rows from before are counted as enrolled here: a revocation still removes them.
    ["ALTER TABLE templates ADD COLUMN source TEXT NOT NULL DEFAULT 'enrolled'"],
    # When a template enrolled here may go: the end of its card, learnt when the card is first matched
    # (``note_card_end``); NULL until then. Templates from before restart their unclaimed grace now.
    ["ALTER TABLE templates ADD COLUMN until REAL",
     "UPDATE templates SET updated = strftime('%s','now') WHERE source = 'enrolled'"],
]
#: ``source`` of a template sent by the registry; ``ENROLLED`` for one made on this device.
REGISTRY, ENROLLED = "registry", "enrolled"


def check_template(data: bytes, model_id: str = SFACE.model_id) -> np.ndarray:
    """Bytes as a template of the face model ``model_id``, or SecurityError(template_invalid): the size,
    finiteness and norms that model's templates have (edge/vision/matcher.py). Used wherever a template
    arrives from outside."""
    return face_model_by_id(model_id).check(data)


def template_digest(vector: np.ndarray) -> bytes:
    return hashlib.sha256(np.asarray(vector, dtype="<f4").tobytes()).digest()


STORE_ROW = ("INSERT OR REPLACE INTO templates (card_id, model_id, sealed, updated, source) "
             "VALUES (?, ?, ?, strftime('%s','now'), ?)")


class TemplateStore:
    def __init__(self, path: Path, key_dir: Path) -> None:
        key_path = key_dir / STORE_KEY_FILE
        if not key_path.exists():
            write_secret(key_path, AESGCM.generate_key(bit_length=256))
        self._aead = AESGCM(read_secret(key_path))
        self._lock = threading.Lock()
        self._db = open_versioned(path, MIGRATIONS, what="template store")

    def put(self, card_id: str, vector: np.ndarray, model_id: str, *, source: str = ENROLLED) -> bytes:
        """Store (or replace) the template for a card; returns its face commitment (SHA-256). ``source``:
        ``ENROLLED`` on this device, or ``REGISTRY`` when a sync brought it (see ``retain``)."""
        if source not in (ENROLLED, REGISTRY):
            raise ValueError(f"unknown template source {source!r}")
        data = np.asarray(vector, dtype="<f4").tobytes()
        with self._lock:
            self._db.execute(STORE_ROW, (card_id, model_id, self._seal(card_id, model_id, data), source))
        return hashlib.sha256(data).digest()

    def _seal(self, card_id: str, model_id: str, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, data, f"{card_id}|{model_id}".encode())

    def _open(self, card_id: str, model_id: str, sealed: bytes) -> bytes:
        """The plaintext of a stored record; InvalidTag if it was altered or moved to another card or model."""
        return self._aead.decrypt(sealed[:12], sealed[12:], f"{card_id}|{model_id}".encode())

    def put_from_registry(self, templates: list[tuple[str, np.ndarray, str]]) -> int:
        """Store a sync's templates (card id, vector, model id), writing only those that are new or changed, in
        one transaction; returns how many were written. Rewriting all of them at every sync, one commit each,
        cost about 19 KB of writes per template per minute: a Pi's SD card does not last that."""
        with self._lock:
            existing = {card: (model, bytes(sealed), source) for card, model, sealed, source in
                        self._db.execute("SELECT card_id, model_id, sealed, source FROM templates")}
            rows = []
            for card_id, vector, model_id in templates:
                data = np.asarray(vector, dtype="<f4").tobytes()
                held = existing.get(card_id)
                if held is not None and held[0] == model_id and held[2] == REGISTRY and \
                        self._held(card_id, model_id, held[1]) == data:
                    continue
                rows.append((card_id, model_id, self._seal(card_id, model_id, data), REGISTRY))
            if rows:
                with write_transaction(self._db):
                    self._db.executemany(STORE_ROW, rows)
        return len(rows)

    def _held(self, card_id: str, model_id: str, sealed: bytes) -> bytes | None:
        """What a stored record holds, or None if it fails authentication (then the sync's copy replaces it)."""
        try:
            return self._open(card_id, model_id, sealed)
        except InvalidTag:
            return None

    def has(self, card_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM templates WHERE card_id = ?", (card_id,)).fetchone() is not None

    def retain(self, registry_cards: set[str], revoked: Callable[[str], bool]) -> int:
        """Delete what this device may no longer hold, after a complete sync: every template the registry
        sent before and no longer sends (its card expired or was revoked), and any template whose card is
        ``revoked``. Returns how many were deleted. A template enrolled here and not known to the registry
        stays until its card is revoked or ends (``prune_enrolled``; sites without a registry have only
        those)."""
        with self._lock:
            rows = self._db.execute("SELECT card_id, source FROM templates").fetchall()
            gone = [card for card, source in rows
                    if (source == REGISTRY and card not in registry_cards) or revoked(card)]
            self._db.executemany("DELETE FROM templates WHERE card_id = ?", [(card,) for card in gone])
        return len(gone)

    def note_card_end(self, card_id: str, expires_at: float) -> None:
        """Remember when the card of a template enrolled here ends (unix seconds), so ``prune_enrolled``
        deletes the template then. Writes only when that changes (an SD card counts writes)."""
        try:
            with self._lock:
                self._db.execute("UPDATE templates SET until = ? WHERE card_id = ? AND source = ? "
                                 "AND (until IS NULL OR until != ?)", (expires_at, card_id, ENROLLED, expires_at))
        except sqlite3.Error:  # bookkeeping for the retention: never the reason a session fails
            log.warning("card end not recorded", exc_info=True)

    def prune_enrolled(self, now: float, unclaimed_s: float) -> int:
        """Delete templates enrolled here whose card has ended, and those never matched to a card within
        ``unclaimed_s`` of their enrollment (a card never issued, or a child's face the registry would not
        keep). Templates from the registry go by ``retain``. Returns how many were deleted. Run on a
        trusted clock: a clock that reads late would delete early."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM templates WHERE source = ? AND ((until IS NOT NULL AND until < ?) "
                "OR (until IS NULL AND updated < ?))", (ENROLLED, now, now - unclaimed_s)).rowcount

    def get(self, card_id: str, *, commitment: bytes, model_id: str) -> np.ndarray:
        with self._lock:
            row = self._db.execute("SELECT model_id, sealed FROM templates WHERE card_id = ?", (card_id,)).fetchone()
        if row is None:
            raise SecurityError(f"no template enrolled for card {card_id}", code="template_missing")
        stored_model, sealed = row
        if stored_model != model_id:
            raise SecurityError(f"template was made by {stored_model}, card expects {model_id}",
                                code="template_mismatch")
        try:
            data = self._open(card_id, stored_model, sealed)
        except InvalidTag as exc:
            raise SecurityError("template record fails authentication (altered or moved)",
                                code="template_corrupt") from exc
        if hashlib.sha256(data).digest() != commitment:
            raise SecurityError("template does not match the card's face commitment", code="template_mismatch")
        return np.frombuffer(data, dtype="<f4").astype(np.float32)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM templates").fetchone()[0])

    def close(self) -> None:
        self._db.close()
