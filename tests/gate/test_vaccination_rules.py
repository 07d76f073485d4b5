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


def test_an_expiry_printed_as_a_month_runs_to_its_last_day_and_a_non_date_is_named():
    """Vials print "EXP 2027-03": good to the 31st. It was refused as "this lot had expired", the wrong
    reason for an expiry the parser did not understand; a malformed one is now named as such."""
    march_31 = int(dt.datetime(2027, 3, 31, 12, tzinfo=dt.UTC).timestamp())
    assert problem("UTC", "2027-03", occurred=march_31) is None
    assert problem("UTC", "2027-03", occurred=march_31 + 86400) == "lot_expired"
    assert problem("UTC", "2024-02", occurred=int(dt.datetime(2024, 2, 29, 9, tzinfo=dt.UTC).timestamp())) is None
    for bad in ("2027-13", "03/2027", "2027-W10-1", "2027-02-30", "+027-03", "", None):
        assert problem("UTC", bad) == "expiry_invalid", bad


def test_a_field_with_a_trailing_newline_is_not_a_lot_or_a_staff_id():
    """`$` in a regular expression also matches before a final newline: "FK1234\\n" passed as a lot number and
    went into the FHIR record as such."""
    assert problem("UTC", "2099-01-01", lot="FK1234\n") == "lot_invalid"
    assert problem("UTC", "2099-01-01", performer="nurse-17\n") == "performer_invalid"


def test_a_station_records_the_vaccines_its_site_lists_and_the_registry_takes_its_name_for_them():
    """The list was fixed in the code (ten CVX codes, the COVID-19 one from 2020): a station could not record
    this season's vaccine. A site lists its own (site.vaccines); the registry takes any CVX code from a
    station with the name the station wrote."""
    season = {"313": "COVID-19, mRNA, LNP-S, PF, 2024-2025 formula"}
    assert problem("UTC", "2099-01-01", vaccine="313", vaccine_display=season["313"]) is None  # at the registry
    record = {**RECORD, "vaccine": "313", "vaccine_display": season["313"], "expiry": "2099-01-01",
              "occurred": LATE_EVENING_UTC}
    assert record_problem(record, now=LATE_EVENING_UTC, vaccines=season) is None  # at the station
    assert record_problem({**record, "vaccine": "208", "vaccine_display": "x"}, now=LATE_EVENING_UTC,
                          vaccines=season) == "vaccine_unknown"  # not on this site's list
    for code, display in (("313", None), ("31x", "a name"), ("313", "line\nbreak"), ("9999", "a name")):
        assert problem("UTC", "2099-01-01", vaccine=code, vaccine_display=display) == "vaccine_unknown", code
    assert problem("UTC", "2099-01-01", vaccine="208") is None  # a record from before: the built-in name
