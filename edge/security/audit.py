"""Tamper-evident audit log on the device: every decision appended to a hash chain.

Entry n stores ``hash_n = SHA-256(hash_{n-1} || canonical CBOR(entry_n))`` with ``hash_0`` = 32 zero bytes.
Editing, deleting or reordering any entry breaks every later hash; ``verify_chain`` finds the first bad
entry. Entries carry ids, decisions and reasons only. Written in the outbox's transaction, so a token and
its audit entry exist together or not at all.

The oldest entries leave with their tokens once the registry holds those (``prune_through``): kept for good,
the log was a record of every card's passages through this gate for as long as the board ran, on a board
anyone can carry off. The chain stays whole: the anchor keeps the sequence number and hash of the last entry
pruned, and the first entry left must chain onto it.
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
#: At most one row: the last pruned entry's sequence number and hash (none while nothing was pruned).
ANCHOR_SCHEMA = "CREATE TABLE audit_anchor (seq INTEGER NOT NULL, hash BLOB NOT NULL)"


def entry_hash(prev: bytes, seq: int, ts: float, token_id: str, card_id: str, decision: str, reasons: str) -> bytes:
    body = cbor2.dumps([seq, ts, token_id, card_id, decision, reasons], canonical=True)
    return hashlib.sha256(prev + body).digest()


def append(db: sqlite3.Connection, *, seq: int, ts: float, token_id: str, card_id: str, decision: str,
           reasons: str) -> bytes:
    """Append inside the caller's transaction; returns the new head hash."""
    row = db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    prev = bytes(row[0]) if row else _anchor(db)[1]
    digest = entry_hash(prev, seq, ts, token_id, card_id, decision, reasons)
    db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (seq, ts, token_id, card_id, decision, reasons, prev, digest))
    return digest


def _anchor(db: sqlite3.Connection) -> tuple[int | None, bytes]:
    """(sequence number, hash) of the last pruned entry; (None, GENESIS) while nothing was pruned."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_anchor'").fetchone() is None:
        return None, GENESIS  # an outbox of an earlier release, read before the daemon migrated it
    row = db.execute("SELECT seq, hash FROM audit_anchor").fetchone()
    return (int(row[0]), bytes(row[1])) if row else (None, GENESIS)


def prune_through(db: sqlite3.Connection, seq: int) -> int:
    """Delete the entries up to and including ``seq`` and anchor the chain on the last of them, inside the
    caller's transaction. Returns how many entries went."""
    row = db.execute("SELECT seq, hash FROM audit WHERE seq <= ? ORDER BY seq DESC LIMIT 1", (seq,)).fetchone()
    if row is None:
        return 0
    removed = db.execute("DELETE FROM audit WHERE seq <= ?", (seq,)).rowcount
    db.execute("DELETE FROM audit_anchor")
    db.execute("INSERT INTO audit_anchor VALUES (?, ?)", (int(row[0]), bytes(row[1])))
    return int(removed)


def verify_chain(db: sqlite3.Connection) -> dict[str, Any]:
    """Check every entry against its predecessor, from the anchor (or the genesis hash). ``pruned_through`` is
    the sequence number of the last entry pruned, None if none was."""
    anchor_seq, prev = _anchor(db)
    count = 0
    for seq, ts, token_id, card_id, decision, reasons, stored_prev, stored in db.execute(
            "SELECT seq, ts, token_id, card_id, decision, reasons, prev_hash, hash FROM audit ORDER BY seq"):
        expected = entry_hash(prev, seq, ts, token_id, card_id, decision, reasons)
        if bytes(stored_prev) != prev or bytes(stored) != expected:
            return {"valid": False, "entries": count, "first_bad_seq": seq, "pruned_through": anchor_seq}
        prev = expected
        count += 1
    return {"valid": True, "entries": count, "first_bad_seq": None, "head": prev.hex(), "pruned_through": anchor_seq}
