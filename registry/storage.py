"""Registry storage: one SQL layer over SQLite (default, embedded) and PostgreSQL (production).

Statements are written once with ``?`` placeholders and portable types; the PostgreSQL backend rewrites
placeholders to ``%s`` and BLOB to BYTEA. Token storage is idempotent on the token id (the token's cti):
``INSERT ... ON CONFLICT DO NOTHING`` (SQLite >= 3.24, PostgreSQL >= 9.5), so a redelivered token is
stored exactly once whatever the interleaving.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS devices (device_id TEXT PRIMARY KEY, signing_key BLOB NOT NULL, "
    "encryption_key BLOB NOT NULL, site TEXT NOT NULL, registered DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, device_id TEXT NOT NULL, card_id TEXT NOT NULL, "
    "iat BIGINT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, sequence BIGINT NOT NULL, site TEXT, "
    "gate TEXT, token BLOB NOT NULL, received DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tokens_by_card ON tokens (card_id, iat)",
    "CREATE TABLE IF NOT EXISTS templates (card_id TEXT PRIMARY KEY, sealed BLOB NOT NULL, model_id TEXT NOT NULL, "
    "commitment BLOB NOT NULL, site TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, version BIGINT NOT NULL, body TEXT NOT NULL)",
]


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    signing_key: bytes
    encryption_key: bytes
    site: str


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    """What the registry keeps of a token besides its bytes (the audit view)."""

    token_id: str
    device_id: str
    card_id: str
    iat: int
    decision: str
    reasons: list[str]
    sequence: int
    site: str
    gate: str


@dataclass(frozen=True, kw_only=True)
class TokenRow(StoredToken):
    """A verified token ready to store."""

    token: bytes


class Storage:
    paramstyle = "qmark"

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # backend hooks
    def _execute(self, sql: str, params: tuple = ()) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def create_schema(self) -> None:
        with self._lock:
            for statement in SCHEMA:
                self._execute(statement)

    # devices
    def register_device(self, device: DeviceRecord) -> None:
        with self._lock:
            self._execute("INSERT INTO devices VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET "
                          "signing_key = excluded.signing_key, encryption_key = excluded.encryption_key, "
                          "site = excluded.site", (device.device_id, device.signing_key, device.encryption_key,
                                                   device.site, time.time()))

    def device(self, device_id: str) -> DeviceRecord | None:
        with self._lock:
            row = self._execute("SELECT device_id, signing_key, encryption_key, site FROM devices WHERE device_id = ?",
                                (device_id,)).fetchone()
        return DeviceRecord(row[0], bytes(row[1]), bytes(row[2]), row[3]) if row else None

    def devices_at(self, site: str) -> list[DeviceRecord]:
        with self._lock:
            rows = self._execute("SELECT device_id, signing_key, encryption_key, site FROM devices WHERE site = ?",
                                 (site,)).fetchall()
        return [DeviceRecord(r[0], bytes(r[1]), bytes(r[2]), r[3]) for r in rows]

    # tokens
    def store_tokens(self, rows: list[TokenRow]) -> list[str]:
        """Store a batch in one transaction; per row 'stored', 'duplicate' (same token already stored) or
        'conflict' (the id is reused with other content). Idempotent: ON CONFLICT decides per row."""
        results = []
        with self._lock, self.transaction():
            for r in rows:
                cursor = self._execute(
                    "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token_id) DO NOTHING",
                    (r.token_id, r.device_id, r.card_id, r.iat, r.decision, json.dumps(r.reasons), r.sequence, r.site,
                     r.gate, r.token, time.time()))
                if cursor.rowcount == 1:
                    results.append("stored")
                    continue
                row = self._execute("SELECT token FROM tokens WHERE token_id = ?", (r.token_id,)).fetchone()
                results.append("duplicate" if row and bytes(row[0]) == r.token else "conflict")
        return results

    def token_count(self) -> int:
        with self._lock:
            return int(self._execute("SELECT COUNT(*) FROM tokens").fetchone()[0])

    def history(self, card_id: str) -> list[StoredToken]:
        with self._lock:
            rows = self._execute("SELECT token_id, device_id, card_id, iat, decision, reasons, sequence, site, gate "
                                 "FROM tokens WHERE card_id = ? ORDER BY iat, sequence", (card_id,)).fetchall()
        return [StoredToken(token_id=r[0], device_id=r[1], card_id=r[2], iat=int(r[3]), decision=r[4],
                            reasons=json.loads(r[5]), sequence=int(r[6]), site=r[7] or "", gate=r[8] or "")
                for r in rows]

    def token_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._execute("SELECT token_id FROM tokens ORDER BY token_id").fetchall()]

    # templates
    def put_template(self, card_id: str, sealed: bytes, model_id: str, commitment: bytes, site: str) -> None:
        with self._lock:
            self._execute("INSERT INTO templates VALUES (?, ?, ?, ?, ?) ON CONFLICT (card_id) DO UPDATE SET "
                          "sealed = excluded.sealed, model_id = excluded.model_id, "
                          "commitment = excluded.commitment, site = excluded.site",
                          (card_id, sealed, model_id, commitment, site))

    def templates_for_site(self, site: str) -> list[tuple[str, bytes, str]]:
        with self._lock:
            rows = self._execute("SELECT card_id, sealed, model_id FROM templates WHERE site = ? OR site = '*'",
                                 (site,)).fetchall()
        return [(r[0], bytes(r[1]), r[2]) for r in rows]

    # documents (trust list, revocation list)
    def put_document(self, name: str, version: int, body: str) -> None:
        with self._lock:
            self._execute("INSERT INTO documents VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                          "version = excluded.version, body = excluded.body", (name, version, body))

    def document(self, name: str) -> tuple[int, str] | None:
        with self._lock:
            row = self._execute("SELECT version, body FROM documents WHERE name = ?", (name,)).fetchone()
        return (int(row[0]), row[1]) if row else None


class SQLiteStorage(Storage):
    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self.create_schema()

    def _execute(self, sql: str, params: tuple = ()) -> Any:
        return self._db.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._db.close()


class PostgresStorage(Storage):
    def __init__(self, dsn: str) -> None:
        super().__init__()
        import psycopg

        self._db = psycopg.connect(dsn, autocommit=True)
        self.create_schema()

    def _execute(self, sql: str, params: tuple = ()) -> Any:
        sql = sql.replace("?", "%s").replace(" BLOB", " BYTEA")
        return self._db.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    def close(self) -> None:
        self._db.close()


def open_storage(url: str) -> Storage:
    """``sqlite:///path/to/registry.sqlite`` or ``postgresql://user@host:port/db``."""
    if url.startswith("sqlite:///"):
        return SQLiteStorage(Path(url[len("sqlite:///"):]))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStorage(url)
    raise ValueError(f"unsupported database URL {url!r} (sqlite:///PATH or postgresql://...)")
