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
        outcome = ingest(storage, make_token(key, "dev-a"), peer_device="dev-a")
        assert outcome.status == "stored"  # the migrated device keeps delivering
        # 0.1.0 kept no card rows: a template whose card the registry does not know still reaches the gates
        assert [card for card, _, _ in storage.templates_for_site("ward-7")] == ["d1" * 16]
        assert storage.delete_ended_templates() == 0
    finally:
        storage.close()
    again = open_storage(url)  # a second start applies nothing twice
    assert again.schema_version() == len(MIGRATIONS)
    again.close()
