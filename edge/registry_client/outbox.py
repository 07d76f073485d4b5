"""The token outbox: SQLite in WAL mode with synchronous=FULL, so a token is on disk before the reply.

A row is written in the same transaction that advances the device's monotonic sequence number, so a
crash can neither lose an issued token nor reuse a sequence number. Delivery (edge.registry_client) marks
rows delivered; the registry de-duplicates by token id, so delivery is at-least-once and storage exactly
once. ``max_rows`` bounds disk use: past it ``issue`` raises (the documented policy is to refuse new
sessions with a clear alarm rather than silently drop audit records).

A gate without a registry (``standalone``) has no one to deliver to: the caller's reply is a token's only
destination, so it is handed over when it is made (stored as delivered then) and leaves with the
retention like any delivered token. Kept pending instead, the tokens of a standalone gate reached
``max_rows`` after that many sessions (100,000 by default: months at a busy gate) and the gate then refused
everyone, with every passage of those months on the board.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge.errors import RegistryUnavailable, StorageError
from edge.security import audit
from edge.sqlite_schema import open_versioned, write_transaction

#: Schema steps (PRAGMA user_version counts the applied ones). Step 1 is the first release's schema
#: (IF NOT EXISTS, so files made before versioning adopt it unchanged).
MIGRATIONS = [
    ["CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, "
     "token BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
     "next_attempt REAL NOT NULL DEFAULT 0, delivered REAL, rejected TEXT)",
     audit.SCHEMA,
     "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
     "INSERT OR IGNORE INTO meta VALUES ('sequence', 0)"],
    # 2: the pending-token query (delivered IS NULL AND rejected IS NULL ORDER BY sequence) without a scan.
    ["CREATE INDEX IF NOT EXISTS tokens_pending ON tokens (sequence) WHERE delivered IS NULL AND rejected IS NULL"],
    # 3: the audit log's oldest entries leave with their tokens; the anchor keeps the chain whole
    [audit.ANCHOR_SCHEMA],
]


class OutboxFull(RegistryUnavailable):
    code = "outbox_full"


class Outbox:
    def __init__(self, path: Path, *, max_rows: int = 100_000, max_pages: int | None = None,
                 standalone: bool = False) -> None:
        """``max_pages`` caps the database file (SQLite pages, 4 KiB each): used to test a full disk.
        ``standalone``: no registry; each token counts as delivered when it is made (see above)."""
        self.path = path
        self.max_rows = max_rows
        self.standalone = standalone
        self._lock = threading.Lock()
        self._db = open_versioned(path, MIGRATIONS, what="token outbox", synchronous="FULL")
        if standalone:  # what an earlier release left pending here had no registry to wait for either
            self._db.execute("UPDATE tokens SET delivered = created WHERE delivered IS NULL AND rejected IS NULL")
        if max_pages is not None:
            self._db.execute(f"PRAGMA max_page_count={int(max_pages)}")

    def issue(self, sign: Callable[[int], tuple[bytes, bytes]], *, card_id: str = "", decision: str = "",
              reasons: str = "") -> tuple[bytes, bytes, int]:
        """Take the next sequence number, sign with it, store the token and its audit entry; all or nothing.

        ``sign(sequence) -> (token, token_id)``. Returns (token, token_id, sequence).
        """
        with self._lock:
            try:
                pending = self._db.execute("SELECT COUNT(*) FROM tokens WHERE delivered IS NULL AND rejected IS "
                                           "NULL").fetchone()[0]
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"the token outbox {self.path} is damaged ({exc})") from exc
            if pending >= self.max_rows:
                raise OutboxFull(f"outbox holds {pending} undelivered tokens (limit {self.max_rows}); "
                                 "the registry has been unreachable too long", pending=pending)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                sequence = int(self._db.execute("SELECT value FROM meta WHERE key='sequence'").fetchone()[0]) + 1
                token, token_id = sign(sequence)
                self._db.execute("UPDATE meta SET value=? WHERE key='sequence'", (sequence,))
                now = time.time()
                self._db.execute("INSERT INTO tokens (token_id, sequence, token, created, delivered) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (token_id.hex(), sequence, token, now, now if self.standalone else None))
                audit.append(self._db, seq=sequence, ts=now, token_id=token_id.hex(), card_id=card_id,
                             decision=decision, reasons=reasons)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if self._db.in_transaction:  # SQLite rolls back by itself on SQLITE_FULL
                    self._db.execute("ROLLBACK")
                if "full" in str(exc):
                    raise OutboxFull(f"outbox storage is full ({exc}); no token can be made durable, so no "
                                     "session can complete: free disk space or restore the registry link") from exc
                raise StorageError(f"the token outbox {self.path} failed: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StorageError(f"the token outbox {self.path} is damaged ({exc}); move it aside and "
                                   "restore it from a backup") from exc
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return token, token_id, sequence

    def pending(self, limit: int = 100, now: float | None = None) -> list[tuple[str, bytes, int]]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute("SELECT token_id, token, attempts FROM tokens WHERE delivered IS NULL AND "
                                    "rejected IS NULL AND next_attempt <= ? ORDER BY sequence LIMIT ?",
                                    (now, limit)).fetchall()
        return [(r[0], bytes(r[1]), int(r[2])) for r in rows]

    def created(self, token_ids: list[str]) -> dict[str, float]:
        """When each of these tokens was made (unix seconds, this device's clock)."""
        with self._lock:
            rows = self._db.execute(f"SELECT token_id, created FROM tokens WHERE token_id IN "
                                    f"({', '.join('?' * len(token_ids))})", token_ids).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def mark_delivered(self, token_ids: list[str]) -> None:
        with self._lock:
            self._db.executemany("UPDATE tokens SET delivered=? WHERE token_id=?",
                                 [(time.time(), t) for t in token_ids])

    def mark_failed(self, token_id: str, next_attempt: float) -> None:
        with self._lock:
            self._db.execute("UPDATE tokens SET attempts=attempts+1, next_attempt=? WHERE token_id=?",
                             (next_attempt, token_id))

    def mark_rejected(self, token_id: str, reason: str) -> None:
        with self._lock:
            self._db.execute("UPDATE tokens SET rejected=? WHERE token_id=?", (reason or "rejected", token_id))

    def prune_delivered(self, keep_s: float, now: float | None = None, *, keep_rejected_s: float | None = None,
                        chunk: int = 5000) -> int:
        """Delete tokens the registry stored more than ``keep_s`` seconds ago (it holds them now), so a board's
        storage does not grow for as long as it runs, tokens it refused for good made more than
        ``keep_rejected_s`` ago (None: kept), and the audit entries before the oldest token still held
        (edge/security/audit.py: the chain is anchored, not broken). Pending tokens stay, with their audit
        entries and every later one: a token kept pins the audit log from its entry on, which is why a
        refused one may not stay for good. Works ``chunk`` rows per transaction, letting sessions write in
        between: the first prune after an upgrade may have a year of history to delete. Returns how many
        tokens went."""
        now = time.time() if now is None else now
        cutoff = now - keep_s
        rejected_cutoff = None if keep_rejected_s is None else now - keep_rejected_s
        pruned = 0
        while True:
            tokens, entries = self._prune_chunk(cutoff, rejected_cutoff, chunk)
            pruned += tokens
            if tokens == 0 and entries == 0:
                return pruned

    def _prune_chunk(self, cutoff: float, rejected_cutoff: float | None, chunk: int) -> tuple[int, int]:
        with self._lock, write_transaction(self._db):
            tokens = self._db.execute(
                "DELETE FROM tokens WHERE token_id IN (SELECT token_id FROM tokens WHERE delivered IS NOT NULL "
                "AND delivered < ? ORDER BY sequence LIMIT ?)", (cutoff, chunk)).rowcount
            if rejected_cutoff is not None:
                tokens += self._db.execute(
                    "DELETE FROM tokens WHERE token_id IN (SELECT token_id FROM tokens WHERE rejected IS NOT NULL "
                    "AND created < ? ORDER BY sequence LIMIT ?)", (rejected_cutoff, chunk)).rowcount
            oldest_kept = self._db.execute("SELECT MIN(sequence) FROM tokens").fetchone()[0]
            first, last_old = self._db.execute("SELECT MIN(seq), MAX(seq) FROM audit WHERE ts < ?",
                                               (cutoff,)).fetchone()
            entries = 0
            if last_old is not None:
                through = last_old if oldest_kept is None else min(last_old, oldest_kept - 1)
                entries = audit.prune_through(self._db, min(through, first + chunk - 1))
        return int(tokens), entries

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM tokens WHERE delivered IS NULL AND rejected IS NULL"
                                        ).fetchone()[0])

    def rejected_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM tokens WHERE rejected IS NOT NULL").fetchone()[0])

    def verify_audit(self) -> dict:
        with self._lock:
            try:
                return audit.verify_chain(self._db)
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"the audit log in {self.path} is damaged ({exc})") from exc

    def decision_of(self, token_id: str) -> tuple[str, str] | None:
        """(card id, decision) of a token this device issued, from its audit entry; None if unknown."""
        with self._lock:
            row = self._db.execute("SELECT card_id, decision FROM audit WHERE token_id = ?", (token_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def all_tokens(self) -> list[bytes]:
        with self._lock:
            return [bytes(r[0]) for r in self._db.execute("SELECT token FROM tokens ORDER BY sequence")]

    def close(self) -> None:
        self._db.close()
