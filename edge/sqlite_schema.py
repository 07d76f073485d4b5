"""Versioned SQLite files on the device: open, check, and migrate forward, with typed errors.

Each store lists its migrations in order; ``PRAGMA user_version`` records how many have been applied. A
file from an older release is migrated in place, one transaction per step; a file from a newer release is
refused (downgrading would silently misread it). A file that is not a database, or whose pages fail
SQLite's ``quick_check``, is refused at open with a message that names it, so the daemon exits with code 5
instead of crash-looping under systemd or failing every request later.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from edge.errors import StorageError

Migration = Sequence[str]  # the statements of one step


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on a connection in autocommit mode (``isolation_level=None``, as opened here):
    ``BEGIN IMMEDIATE`` takes the write lock at once, COMMIT at the end, ROLLBACK on any exception (unless
    SQLite already rolled back, as it does on SQLITE_FULL)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def open_versioned(path: Path, migrations: Sequence[Migration], *, what: str, wal: bool = True,
                   synchronous: str = "NORMAL") -> sqlite3.Connection:
    """Open ``path`` (created if absent), verify it and apply the missing migrations."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    except (OSError, sqlite3.OperationalError) as exc:
        raise StorageError(f"cannot open the {what} {path}: {exc}", code="storage_unwritable") from exc
    try:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise StorageError(f"the {what} {path} is damaged ({'; '.join(problems[:3])}); move it aside and "
                               "restore it from a backup", code="storage_corrupt")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(migrations):
            raise StorageError(f"the {what} {path} is at schema version {version}, newer than this release "
                               f"knows ({len(migrations)}); install the newer release again", code="storage_newer")
        for number, steps in enumerate(migrations[version:], start=version + 1):
            with write_transaction(db):
                for statement in steps:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")
        return db
    except sqlite3.DatabaseError as exc:
        db.close()
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
            raise StorageError(f"the {what} {path} cannot be written: {exc}", code="storage_unwritable") from exc
        raise StorageError(f"the {what} {path} is not a readable database ({exc}); move it aside and restore "
                           "it from a backup", code="storage_corrupt") from exc
    except BaseException:
        db.close()
        raise


def schema_version(path: Path) -> int:
    with sqlite3.connect(str(path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
