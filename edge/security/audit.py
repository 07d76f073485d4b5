"""Tamper-evident audit log on the device: every decision appended to a hash chain.

Entry n stores ``hash_n = SHA-256(hash_{n-1} || canonical CBOR(entry_n))`` with ``hash_0`` = 32 zero bytes.
Editing, deleting or reordering any entry breaks every later hash; ``verify_chain`` finds the first bad
entry. Entries carry ids, decisions and reasons only. Written in the outbox's transaction, so a token and
its audit entry exist together or not at all.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import cbor2

GENESIS = b"\x00" * 32
SCHEMA = ("CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL, token_id TEXT NOT NULL, "
          "card_id TEXT NOT NULL, decision TEXT NOT NULL, reasons TEXT NOT NULL, prev_hash BLOB NOT NULL, "
          "hash BLOB NOT NULL)")


def entry_hash(prev: bytes, seq: int, ts: float, token_id: str, card_id: str, decision: str, reasons: str) -> bytes:
    body = cbor2.dumps([seq, ts, token_id, card_id, decision, reasons], canonical=True)
    return hashlib.sha256(prev + body).digest()


def append(db: sqlite3.Connection, *, seq: int, ts: float, token_id: str, card_id: str, decision: str,
           reasons: str) -> bytes:
    """Append inside the caller's transaction; returns the new head hash."""
    row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = bytes(row[0]) if row else GENESIS
    digest = entry_hash(prev, seq, ts, token_id, card_id, decision, reasons)
    db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (seq, ts, token_id, card_id, decision, reasons, prev, digest))
    return digest


def verify_chain(db: sqlite3.Connection) -> dict[str, Any]:
    prev = GENESIS
    count = 0
    for seq, ts, token_id, card_id, decision, reasons, stored_prev, stored in db.execute(
            "SELECT seq, ts, token_id, card_id, decision, reasons, prev_hash, hash FROM audit ORDER BY seq"):
        expected = entry_hash(prev, seq, ts, token_id, card_id, decision, reasons)
        if bytes(stored_prev) != prev or bytes(stored) != expected:
            return {"valid": False, "entries": count, "first_bad_seq": seq}
        prev = expected
        count += 1
    return {"valid": True, "entries": count, "first_bad_seq": None, "head": prev.hex()}
