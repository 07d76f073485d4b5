"""The fields a vaccination record must have (edge/gate/vaccination.py), checked alike on the station and at
the registry; here the time rules: the lot's expiry against the day at the site, and the time's bounds."""

import datetime as dt

from edge.gate.vaccination import local_day, record_problem

RECORD = {"vaccine": "208", "lot": "FK1234", "dose": 1, "series": 2, "route": "IM", "site": "LD",
          "performer": "nurse-17"}
#: 2026-12-07 23:30 UTC: the evening of the 7th in Chicago, already the 8th in Berlin.
LATE_EVENING_UTC = int(dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC).timestamp())


def problem(zone: str, expiry: str, occurred: int = LATE_EVENING_UTC, **changes):
    record = {**RECORD, "expiry": expiry, "occurred": occurred, "day": local_day(occurred, zone), **changes}
    return record_problem(record, now=occurred + 60)


def test_a_lots_expiry_is_a_day_at_the_site_not_in_utc():
    """A lot good until the 7th, given at 23:30 on the 7th in Chicago (05:30 UTC on the 8th), is valid; read
    as a UTC date it was refused. The other way, 00:30 on the 8th in Berlin (23:30 UTC on the 7th) is past the
    expiry, and was accepted."""
    evening_in_chicago = LATE_EVENING_UTC + 6 * 3600
    assert local_day(evening_in_chicago, "America/Chicago") == "2026-12-07"
    assert problem("America/Chicago", "2026-12-07", occurred=evening_in_chicago) is None
    assert record_problem({**RECORD, "expiry": "2026-12-07", "occurred": evening_in_chicago},
                          now=evening_in_chicago) == "lot_expired"  # a record without its day: the UTC date
    assert local_day(LATE_EVENING_UTC, "Europe/Berlin") == "2026-12-08"
    assert problem("Europe/Berlin", "2026-12-07") == "lot_expired"
    assert problem("UTC", "2026-12-07") is None


def test_the_day_must_be_the_time_s_day_somewhere_and_the_time_a_time():
    assert problem("UTC", "2099-01-01", day="2026-12-10") == "record_invalid"  # three days off: not a zone
    assert problem("UTC", "2099-01-01", day="the 7th") == "record_invalid"
    for occurred in (0, -5, 2**41, True):  # no time, before 1970, milliseconds, a boolean
        assert record_problem({**RECORD, "expiry": "2099-01-01", "occurred": occurred}, now=LATE_EVENING_UTC) \
            == "record_invalid", occurred
