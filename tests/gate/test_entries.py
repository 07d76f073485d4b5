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


def test_nothing_is_kept_longer_than_a_rule_needs_it(tmp_path):
    """Staff overrides (staff ids) and recorded appointments were kept for good: a year of a station was a list
    of every vaccination appointment it recorded and when, on a board anyone can carry off."""
    clock = Clock()
    log = EntryLog(tmp_path / "entries.sqlite", per_day=3, clock=clock)
    day = 86400.0
    log.record("11" * 16)
    log.remember_allow("t1", "aa" * 16, "vaccination_appointment", until=clock.now + 3600)
    assert log.record_vaccination("aa" * 16, "r1", until=clock.now + 3600)  # the appointment ends in an hour
    assert log.record_vaccination("bb" * 16, "r2", until=clock.now + 30 * day)  # a card for a month
    assert log.record_override("card:" + "cd" * 16, "staff-1")
    assert log.record_override("d1" * 16, "staff-1")  # a DENY still in the outbox
    assert log.record_override("d2" * 16, "staff-2")  # a DENY the outbox has pruned
    known = {"d1" * 16}

    assert log.prune(known.__contains__) == {"entries": 0, "allowed": 0, "records": 0, "overrides": 0}
    clock.now += 2 * 3600  # the hour's limits are past; the DENYs stay spent while they can be named
    assert log.prune(known.__contains__)["overrides"] == 2  # the card's override and the forgotten DENY
    assert log.overridden("d1" * 16) and log.overrides_last_hour() == 0
    assert log.recorded("aa" * 16)  # its card ends at most a day (clock skew) before its mark goes
    clock.now += 3 * day
    assert log.prune(known.__contains__) == {"entries": 1, "allowed": 1, "records": 1, "overrides": 0}
    assert not log.recorded("aa" * 16) and log.recorded("bb" * 16) and log.overridden("d1" * 16)
    assert log.refusal("11" * 16) is None and log.allowed("t1") is None
    clock.now += 30 * day
    assert log.prune(known.__contains__)["records"] == 1 and not log.recorded("bb" * 16)
    log.close()


def test_appointments_recorded_before_their_end_was_stored_are_kept_a_year(tmp_path):
    path = tmp_path / "entries.sqlite"
    db = sqlite3.connect(str(path), isolation_level=None)
    for step in MIGRATIONS[:4]:
        for statement in step:
            db.execute(statement)
    clock = Clock()
    db.execute("INSERT INTO records VALUES (?, ?, ?)", ("aa" * 16, "r1", clock.now))
    db.execute("PRAGMA user_version=4")
    db.close()
    log = EntryLog(path, clock=clock)
    clock.now += 300 * 86400
    log.prune(lambda token_id: False)
    assert log.recorded("aa" * 16)
    clock.now += 102 * 86400
    log.prune(lambda token_id: False)
    assert not log.recorded("aa" * 16)
    log.close()
