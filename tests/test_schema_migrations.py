"""Upgrades keep what a board or the registry already holds: databases written by the previous release
(0.1.0, before schemas carried a version) are migrated forward in place; a newer database is refused."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from edge.errors import StorageError
from edge.registry_client.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from edge.registry_client.outbox import Outbox
from edge.security import audit
from edge.security.templates import TemplateStore
from edge.sqlite_schema import schema_version

#: The outbox and template store exactly as release 0.1.0 created them (no user_version).
OUTBOX_0_1_0 = [
    "CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, token BLOB NOT NULL, "
    "created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0, "
    "delivered REAL, rejected TEXT)",
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, token_id TEXT NOT NULL, "
    "card_id TEXT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, prev_hash BLOB NOT NULL, "
    "hash BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta VALUES ('sequence', 0)",
]
TEMPLATES_0_1_0 = ["CREATE TABLE IF NOT EXISTS templates (card_id TEXT PRIMARY KEY, model_id TEXT NOT NULL, "
                   "sealed BLOB NOT NULL, updated REAL NOT NULL)"]


def test_an_outbox_of_the_previous_release_is_migrated_and_keeps_its_tokens(tmp_path):
    path = tmp_path / "outbox.sqlite"
    with sqlite3.connect(path) as db:
        for statement in OUTBOX_0_1_0:
            db.execute(statement)
        db.execute("INSERT INTO tokens (token_id, sequence, token, created) VALUES ('aa', 7, x'00', ?)",
                   (time.time(),))
        db.execute("UPDATE meta SET value = 7 WHERE key = 'sequence'")
        audit.append(db, seq=7, ts=time.time(), token_id="aa", card_id="c1", decision="ALLOW", reasons="OK")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # `edge audit verify` before the daemon migrates
        assert audit.verify_chain(db) == {**audit.verify_chain(db), "valid": True, "entries": 1, "pruned_through": None}
    outbox = Outbox(path)
    try:
        assert schema_version(path) == len(OUTBOX_MIGRATIONS)
        assert [t for t, _, _ in outbox.pending()] == ["aa"]
        _, _, sequence = outbox.issue(lambda seq: (b"token", bytes(16)))
        assert sequence == 8  # the monotonic sequence carries on
        assert outbox.verify_audit() == {**outbox.verify_audit(), "valid": True, "entries": 2}
    finally:
        outbox.close()


@pytest.mark.parametrize("version", [0, 1, 2])  # 0.1.0 (no user_version), before `source`, before `until`
def test_a_template_store_of_a_previous_release_is_migrated(tmp_path, version):
    store = TemplateStore(tmp_path / "sealer.sqlite", tmp_path / "keys")  # to seal a record with the real key
    vector = np.random.default_rng(0).normal(size=128).astype(np.float32)
    commitment = store.put("card", vector, "sface")
    card_id, model_id, sealed, _ = store._db.execute("SELECT card_id, model_id, sealed, updated FROM templates"
                                                     ).fetchone()
    store.close()
    path = tmp_path / "t0.sqlite"
    with sqlite3.connect(path) as db:
        for statement in TEMPLATES_0_1_0:
            db.execute(statement)
        db.execute("INSERT INTO templates VALUES (?, ?, ?, ?)", (card_id, model_id, sealed, 1_600_000_000.0))
        if version == 2:
            db.execute("ALTER TABLE templates ADD COLUMN source TEXT NOT NULL DEFAULT 'enrolled'")
        db.execute(f"PRAGMA user_version = {version}")
    store = TemplateStore(path, tmp_path / "keys")
    try:
        assert schema_version(path) == 3
        np.testing.assert_array_equal(store.get("card", commitment=commitment, model_id="sface"), vector)
        # Enrolled years ago and never matched since the upgrade: its unclaimed grace starts at the upgrade,
        # so a gate does not drop the faces of cards in use on its first day.
        assert store.prune_enrolled(time.time(), 400 * 86400.0) == 0 and store.has("card")
        # Kept as enrolled here: whatever the registry sends, only a revocation (or its end) removes it.
        assert store.retain(set(), lambda card: False) == 0 and store.has("card")
        assert store.retain(set(), lambda card: card == "card") == 1 and not store.has("card")
    finally:
        store.close()


def test_a_database_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StorageError) as e:
        Outbox(path)
    assert e.value.code == "storage_newer" and str(path) in e.value.message
