"""Entry limits a gate enforces offline from its own records: at most ``per_day`` entries per permit in any
24 hours, and not again within ``min_interval_s`` (the same permit passed back across the gate to a second
person). The gate cannot tell in from out (a VerifyRequest has no direction), so a true anti-passback rule
(no second "in" without an "out") is left to gates that report direction; docs/ESCORT.md.

Only ALLOWs are recorded, in SQLite beside the outbox (versioned, checked at open). Card ids only.

Nothing is kept longer than a rule needs it (``prune``, run daily by the daemon on a trusted clock): entries
for two days, a card's override for an hour (the hourly limits; the 10-minute rule), a DENY's override while
that DENY can still be named (its entry in the outbox's audit), an ALLOW a record may follow for a day, and
an appointment's "recorded" mark until the appointment card can no longer be used (its end or its window's,
plus a day). Before 2026-11-24 overrides (staff ids) and recorded appointments were kept for good.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from edge.errors import StorageError
from edge.gate.overrides import CARD_PREFIX, already_overridden
from edge.sqlite_schema import open_versioned, write_transaction

MIGRATIONS = [["CREATE TABLE IF NOT EXISTS entries (card_id TEXT NOT NULL, at REAL NOT NULL)",
               "CREATE INDEX IF NOT EXISTS entries_by_card ON entries (card_id, at)"],
              # 2: staff overrides: one per refused session, counted per staff member and for the gate
              ["CREATE TABLE overrides (refused TEXT PRIMARY KEY, staff TEXT NOT NULL, at REAL NOT NULL)"],
              # 3: the ALLOWs a vaccination record may follow, and the appointments already recorded
              ["CREATE TABLE allowed (token_id TEXT PRIMARY KEY, card_id TEXT NOT NULL, card_type TEXT NOT NULL, "
               "at REAL NOT NULL)",
               "CREATE TABLE records (appointment TEXT PRIMARY KEY, record TEXT NOT NULL, at REAL NOT NULL)"],
              # 4: a card (a RETRY's override) may be overridden again on a later visit (edge/gate/overrides.py),
              #    so the refusal is no longer the key
              ["CREATE TABLE overrides_v2 (refused TEXT NOT NULL, staff TEXT NOT NULL, at REAL NOT NULL)",
               "INSERT INTO overrides_v2 SELECT refused, staff, at FROM overrides",
               "DROP TABLE overrides",
               "ALTER TABLE overrides_v2 RENAME TO overrides",
               "CREATE INDEX overrides_by_refusal ON overrides (refused, at)"],
              # 5: until when an ALLOW's card, and so a recorded appointment, can be used (``prune``)
              ["ALTER TABLE allowed ADD COLUMN until REAL",
               "ALTER TABLE records ADD COLUMN until REAL"]]
HOUR_S = 3600.0
DAY_S = 86400.0
#: A recorded appointment is kept this long past the end of its card (seconds): more than any clock skew a
#: card check allows, so the card is refused as expired before its "recorded" mark is gone.
RECORD_MARGIN_S = DAY_S
#: For marks written before the card's end was stored (schema 4): a card is issued for a year by default.
LEGACY_RECORD_KEEP_S = 400 * DAY_S


class Allowed(NamedTuple):
    """An ALLOW this gate gave: the card, its type, when (unix seconds) and until when the card can be used."""

    card_id: str
    card_type: str
    at: float
    until: float | None


class EntryLog:
    def __init__(self, path: Path, *, per_day: int | None = None, min_interval_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.per_day = per_day
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._db = open_versioned(path, MIGRATIONS, what="entry log")

    @property
    def enforced(self) -> bool:
        """Whether entry limits apply (overrides are always recorded)."""
        return bool(self.per_day or self.min_interval_s)

    def refusal(self, card_id: str) -> str | None:
        """Why this permit may not enter now (a sentence for the guard), or None."""
        if not self.enforced:
            return None
        now = self.clock()
        try:
            with self._lock:
                count, last = self._db.execute("SELECT COUNT(*), MAX(at) FROM entries WHERE card_id = ? AND at > ?",
                                               (card_id, now - DAY_S)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"the entry log is damaged ({exc})") from exc
        if self.min_interval_s and last is not None and now - last < self.min_interval_s:
            return f"this permit was used {int(now - last)} s ago; wait {int(self.min_interval_s - (now - last)) + 1} s"
        if self.per_day and count >= self.per_day:
            return f"this permit has had its {self.per_day} entries in the last 24 hours"
        return None

    def record(self, card_id: str) -> None:
        if not self.enforced:
            return
        now = self.clock()
        with self._lock:
            self._db.execute("INSERT INTO entries VALUES (?, ?)", (card_id, now))
            self._db.execute("DELETE FROM entries WHERE at < ?", (now - 2 * DAY_S,))

    # -- staff overrides ---------------------------------------------------------------------------------
    def _override_times(self, refused: str) -> list[float]:
        return [float(r[0]) for r in self._db.execute("SELECT at FROM overrides WHERE refused = ?", (refused,))]

    def overridden(self, refused: str) -> bool:
        """Whether an override now would be a second one of ``refused`` (edge/gate/overrides.py)."""
        with self._lock:
            return already_overridden(refused, self._override_times(refused), self.clock())

    def overrides_last_hour(self, staff: str | None = None) -> int:
        since = self.clock() - HOUR_S
        with self._lock:
            if staff is None:
                row = self._db.execute("SELECT COUNT(*) FROM overrides WHERE at > ?", (since,)).fetchone()
            else:
                row = self._db.execute("SELECT COUNT(*) FROM overrides WHERE at > ? AND staff = ?",
                                       (since, staff)).fetchone()
        return int(row[0])

    def record_override(self, refused: str, staff: str) -> bool:
        """Record an override of ``refused`` by ``staff``; False, recording nothing, when it would be a second
        one (checked and written under one lock, so two at once cannot both pass)."""
        now = self.clock()
        with self._lock:
            if already_overridden(refused, self._override_times(refused), now):
                return False
            self._db.execute("INSERT INTO overrides VALUES (?, ?, ?)", (refused, staff, now))
        return True

    # -- vaccination records ----------------------------------------------------------------------------
    def remember_allow(self, token_id: str, card_id: str, card_type: str, until: float | None = None) -> None:
        """Keep an ALLOW a vaccination record may follow; ``until``: unix seconds after which the card can no
        longer be used (its end, or its appointment window's)."""
        now = self.clock()
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO allowed (token_id, card_id, card_type, at, until) "
                             "VALUES (?, ?, ?, ?, ?)", (token_id, card_id, card_type, now, until))
            self._db.execute("DELETE FROM allowed WHERE at < ?", (now - DAY_S,))

    def allowed(self, token_id: str) -> Allowed | None:
        """An ALLOW this gate gave, within the last day."""
        with self._lock:
            row = self._db.execute("SELECT card_id, card_type, at, until FROM allowed WHERE token_id = ?",
                                   (token_id,)).fetchone()
        return Allowed(row[0], row[1], float(row[2]), None if row[3] is None else float(row[3])) if row else None

    def recorded(self, appointment: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM records WHERE appointment = ?", (appointment,)).fetchone() \
                is not None

    def record_vaccination(self, appointment: str, record_id: str, until: float | None = None) -> bool:
        """Mark ``appointment`` recorded, kept until its card (``until``, unix seconds) can no longer be used."""
        with self._lock:
            cursor = self._db.execute("INSERT INTO records (appointment, record, at, until) VALUES (?, ?, ?, ?) "
                                      "ON CONFLICT (appointment) DO NOTHING",
                                      (appointment, record_id, self.clock(), until))
        return cursor.rowcount == 1

    # -- retention --------------------------------------------------------------------------------------
    def prune(self, deny_known: Callable[[str], bool]) -> dict[str, int]:
        """Delete what no rule needs any more (see the module's docstring); ``deny_known(token_id)`` says
        whether a DENY can still be named by an override (the daemon asks the outbox). Returns the rows
        deleted per table. Run on a trusted clock: a clock that reads late would delete early."""
        now = self.clock()
        with self._lock, write_transaction(self._db):
            entries = self._db.execute("DELETE FROM entries WHERE at < ?", (now - 2 * DAY_S,)).rowcount
            allowed = self._db.execute("DELETE FROM allowed WHERE at < ?", (now - DAY_S,)).rowcount
            records = self._db.execute("DELETE FROM records WHERE COALESCE(until, at + ?) < ?",
                                       (LEGACY_RECORD_KEEP_S, now - RECORD_MARGIN_S)).rowcount
            overrides = self._db.execute("DELETE FROM overrides WHERE refused LIKE ? AND at < ?",
                                         (CARD_PREFIX + "%", now - HOUR_S)).rowcount
            old = [r[0] for r in self._db.execute("SELECT DISTINCT refused FROM overrides WHERE refused NOT LIKE ? "
                                                  "AND at < ?", (CARD_PREFIX + "%", now - HOUR_S))]
            for refused in old:
                if not deny_known(refused):
                    overrides += self._db.execute("DELETE FROM overrides WHERE refused = ?", (refused,)).rowcount
        return {"entries": entries, "allowed": allowed, "records": records, "overrides": overrides}

    def close(self) -> None:
        self._db.close()
