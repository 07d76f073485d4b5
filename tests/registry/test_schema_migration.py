"""The registry's database as release 0.1.0 wrote it (no schema version) is migrated forward in place on
both backends: devices keep their keys and deliver, stored tokens stay in the audit."""

from __future__ import annotations

import sqlite3
import time

import pytest

pytestmark = pytest.mark.slow

REGISTRY_0_1_0 = [
    "CREATE TABLE devices (device_id TEXT PRIMARY KEY, signing_key BLOB NOT NULL, encryption_key BLOB NOT NULL, "
    "site TEXT NOT NULL, registered DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE tokens (token_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, card_id TEXT NOT NULL, "
    "iat BIGINT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, sequence BIGINT NOT NULL, site TEXT, "
    "gate TEXT, token BLOB NOT NULL, received DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX tokens_by_card ON tokens (card_id, iat)",
    "CREATE TABLE templates (card_id TEXT PRIMARY KEY, sealed BLOB NOT NULL, model_id TEXT NOT NULL, "
    "commitment BLOB NOT NULL, site TEXT NOT NULL)",
    "CREATE TABLE documents (name TEXT PRIMARY KEY, version BIGINT NOT NULL, body TEXT NOT NULL)",
]


def test_a_registry_of_the_previous_release_is_migrated_and_its_devices_keep_delivering(tmp_path, db_url):
    from edge.security.keys import DeviceKey
    from registry.ingest import ingest
    from registry.storage import MIGRATIONS, key_id, open_storage

    from .test_ingest_rules import make_token

    url = db_url
    sqlite = url.startswith("sqlite:///")
    if sqlite:
        raw = sqlite3.connect(url[len("sqlite:///"):])
        placeholder, blob = "?", "BLOB"
    else:
        import psycopg

        raw = psycopg.connect(url, autocommit=True)
        placeholder, blob = "%s", "BYTEA"
    key = DeviceKey.load_or_create(tmp_path / "keys")
    for statement in REGISTRY_0_1_0:
        raw.execute(statement.replace("BLOB", blob))
    raw.execute(f"INSERT INTO devices VALUES ({', '.join([placeholder] * 5)})",
                (b"dev-a".decode(), key.public_raw, b"\x00" * 32, "ward-7", time.time()))
    raw.execute(f"INSERT INTO tokens VALUES ({', '.join([placeholder] * 11)})",
                ("t1", "dev-a", "c1" * 16, int(time.time()), "ALLOW", '["OK"]', 1, "ward-7", "g", b"tok",
                 time.time()))
    raw.execute(f"INSERT INTO templates VALUES ({', '.join([placeholder] * 5)})",
                ("d1" * 16, b"sealed", "sface-2021dec-fp32", b"\x00" * 32, "ward-7"))  # its card unknown here
    if sqlite:
        raw.commit()
    raw.close()

    storage = open_storage(url)
    try:
        assert storage.schema_version() == len(MIGRATIONS)
        assert [t.token_id for t in storage.history("c1" * 16)] == ["t1"]
        assert storage.device("dev-a").state == "active"
        assert storage.device_key("dev-a", key_id(key.public_raw))[0] == key.public_raw
        # the daily cap counts what was stored before the upgrade (schema 10's counters are back-filled)
        assert storage.tokens_signed("dev-a", int(time.time()) // 86400) == 1
        outcome = ingest(storage, make_token(key, "dev-a"), peer_device="dev-a")
        assert outcome.status == "stored"  # the migrated device keeps delivering
        assert storage.tokens_signed("dev-a", int(time.time()) // 86400) == 2
        # 0.1.0 kept no card rows: a template whose card the registry does not know still reaches the gates
        assert [card for card, _, _ in storage.templates_for_site("ward-7")] == ["d1" * 16]
        assert storage.delete_ended_templates() == 0
    finally:
        storage.close()
    again = open_storage(url)  # a second start applies nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    again.close()


def test_overrides_stored_before_schema_6_keep_counting(tmp_path, db_url, monkeypatch):
    """Schema 6 keys overrides by token, with their iat (a card may be overridden again on a later visit): the
    rows written under schema 5 keep their refusal, and a DENY overridden then stays overridden."""
    import registry.storage as storage_module
    from edge.security.keys import DeviceKey
    from registry.ingest import ingest
    from registry.storage import MIGRATIONS, DeviceRecord, open_storage

    from .test_ingest_rules import make_token

    monkeypatch.setattr(storage_module, "MIGRATIONS", MIGRATIONS[:5])
    old = open_storage(db_url)
    assert old.schema_version() == 5
    key = DeviceKey.load_or_create(tmp_path / "keys")
    old.register_device(DeviceRecord("dev-a", key.public_raw, b"\x00" * 32, "ward-7"))
    iat = int(time.time()) - 3600
    with old.atomic():
        old._execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     ("dev-a", "o1", "c1" * 16, iat, "ALLOW", '["STAFF_OVERRIDE"]', 2, "ward-7", "g", b"tok",
                      time.time()))
        old._execute("INSERT INTO overrides VALUES (?, ?, ?, ?, ?)", ("dev-a", "d1" * 16, "o1", "s1" * 16, "x"))
    old.close()
    monkeypatch.setattr(storage_module, "MIGRATIONS", MIGRATIONS)
    storage = open_storage(db_url)
    try:
        assert storage.schema_version() == len(MIGRATIONS)
        assert storage.override_times("dev-a", "d1" * 16) == [iat]
        assert ingest(storage, make_token(key, "dev-a"), peer_device="dev-a").status == "stored"
    finally:
        storage.close()
