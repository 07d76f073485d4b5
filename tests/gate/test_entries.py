"""The gate's own records of staff overrides (edge/gate/entries.py): once per DENY, and for a RETRY, which
names the card, once per card within edge.gate.overrides.CARD_OVERRIDE_INTERVAL_S."""

from __future__ import annotations

import sqlite3

from edge.gate.entries import MIGRATIONS, EntryLog
from edge.gate.overrides import CARD_OVERRIDE_INTERVAL_S


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_deny_is_overridden_once_for_good(tmp_path):
    clock = Clock()
    log = EntryLog(tmp_path / "entries.sqlite", clock=clock)
    assert not log.overridden("ab" * 16)
    assert log.record_override("ab" * 16, "staff-1")
    clock.now += 30 * 86400  # a month later the same refused session is still spent
    assert log.overridden("ab" * 16)
    assert not log.record_override("ab" * 16, "staff-2")
    log.close()


def test_a_card_refused_again_on_a_later_visit_can_be_overridden_again(tmp_path):
    """A patient the camera cannot take (a bandaged face, a wheelchair below its view) is refused with RETRY
    on every visit; the first override used to spend the card at this gate for good."""
    clock = Clock()
    log = EntryLog(tmp_path / "entries.sqlite", clock=clock)
    card = "card:" + "cd" * 16
    assert log.record_override(card, "staff-1")
    clock.now += 60  # the same moment: not a second person on the same staff action
    assert log.overridden(card) and not log.record_override(card, "staff-1")
    clock.now += CARD_OVERRIDE_INTERVAL_S  # the next visit
    assert not log.overridden(card)
    assert log.record_override(card, "staff-2")
    assert log.overridden(card)
    assert not log.overridden("card:" + "ef" * 16)  # another card was never overridden
    assert log.overrides_last_hour() == 2 and log.overrides_last_hour("staff-2") == 1
    log.close()


def test_overrides_recorded_by_the_previous_schema_still_count(tmp_path):
    path = tmp_path / "entries.sqlite"
    db = sqlite3.connect(str(path), isolation_level=None)
    for step in MIGRATIONS[:3]:  # the release before: refused was the table's primary key
        for statement in step:
            db.execute(statement)
    clock = Clock()
    db.execute("INSERT INTO overrides VALUES (?, ?, ?)", ("ab" * 16, "staff-1", clock.now - 3600))
    db.execute("INSERT INTO overrides VALUES (?, ?, ?)", ("card:" + "cd" * 16, "staff-1", clock.now - 3600))
    db.execute("PRAGMA user_version=3")
    db.close()
    log = EntryLog(path, clock=clock)
    assert log.overridden("ab" * 16)  # kept, and still spent
    assert not log.overridden("card:" + "cd" * 16)  # an hour ago: this visit may be overridden
    assert log.record_override("card:" + "cd" * 16, "staff-2")
    assert log.overrides_last_hour() == 1
    log.close()
