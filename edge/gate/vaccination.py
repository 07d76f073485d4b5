"""What a vaccination station may record, checked the same way on the device (before signing) and at the
registry (before storing): a vaccine from the site's list, a lot number, an expiry not before the day of the
vaccination, a dose within its series, a route and body site from FHIR's code systems, the performer's staff id,
and a time of vaccination not before the verification it follows (a nurse's tablet with a wrong clock would
otherwise date the person's immunization record years back).
Each problem is a reason code with a sentence a nurse understands (``MESSAGES``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

#: Vaccines a station records unless its site lists its own (``site.vaccines``): CVX code -> display (CDC's vaccine
#: codes, as FHIR's http://hl7.org/fhir/sid/cvx). The registry takes any code of CVX's form from a station (the
#: station checked it against its list, and signed the record) with the station's display.
VACCINES = {
    "208": "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose",
    "141": "Influenza, seasonal, injectable",
    "03": "MMR",
    "20": "DTaP",
    "08": "Hep B, adolescent or pediatric",
    "10": "IPV",
    "133": "Pneumococcal conjugate PCV 13",
    "116": "Rotavirus, pentavalent",
    "21": "Varicella",
    "62": "HPV, quadrivalent",
}
#: FHIR v3 RouteOfAdministration and ActSite codes a station may send.
ROUTES = {"IM": "Injection, intramuscular", "SC": "Injection, subcutaneous", "ID": "Injection, intradermal",
          "PO": "Swallow, oral", "NASINHLC": "Inhalation, nasal"}
SITES = {"LA": "left arm", "RA": "right arm", "LD": "left deltoid", "RD": "right deltoid", "LT": "left thigh",
         "RT": "right thigh", "LVL": "left vastus lateralis", "RVL": "right vastus lateralis"}
LOT = re.compile(r"^[A-Za-z0-9-]{1,20}$")
STAFF = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
EXPIRY = re.compile(r"^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$")
#: ``\Z``, not ``$`` (which also matches before a final newline): the config checks a site's list with these
#: patterns by searching, not by matching the whole text.
CVX = re.compile(r"^[0-9]{1,3}\Z")
DISPLAY = re.compile(r"^[^\x00-\x1f]{1,200}\Z")


#: How long before the verification it follows a record may say the vaccination happened, seconds (the station's
#: clock and the nurse's app's differ a little; a vaccination is given after the person was verified).
OCCURRED_SLACK_S = 300


def site_zone(name: str) -> dt.tzinfo:
    """The site's time zone by its IANA name ("UTC" needs no time zone database); ValueError if unknown."""
    if name == "UTC":
        return dt.UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: an IANA name such as Europe/Berlin (the system's time "
                         "zone database, Debian's tzdata, must be installed)") from None


def _unix_seconds(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a time a record can carry: whole unix seconds after 1970 (below 2**40: a time in
    milliseconds is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**40


def vaccine_name(record: dict[str, Any]) -> Any:
    """The name a record files its vaccine under: the station's (``vaccine_display``), or for a record from
    before 2026-12-07, which carries none, the built-in one."""
    return record.get("vaccine_display", VACCINES.get(record["vaccine"]))


def station_record(record: dict[str, Any], *, timezone: str, vaccines: Mapping[str, str]) -> dict[str, Any]:
    """The record as the station signs it: with the day at the site (``day``, what the lot's expiry is
    compared with) and the vaccine's name from the site's list (``vaccine_display``), where its fields allow."""
    added: dict[str, str] = {}
    if _unix_seconds(record.get("occurred")):
        added["day"] = local_day(record["occurred"], timezone)
    vaccine = record.get("vaccine")
    if isinstance(vaccine, str) and vaccine in vaccines:
        added["vaccine_display"] = vaccines[vaccine]
    return {**record, **added}


def local_day(occurred: int, zone: str) -> str:
    """The calendar day (ISO date) at the site when the vaccination was given: what a lot's expiry date means."""
    return dt.datetime.fromtimestamp(occurred, site_zone(zone)).date().isoformat()


def _day_of(record: dict[str, Any], occurred: int) -> dt.date | None:
    """The record's own day at the site (``day``, written by the station) if it lies within a day of the UTC
    date of ``occurred`` (time zones span UTC-12 to UTC+14), else None; records without one: the UTC date."""
    utc = dt.datetime.fromtimestamp(occurred, dt.UTC).date()
    if "day" not in record:
        return utc
    try:
        day = dt.date.fromisoformat(record["day"]) if isinstance(record["day"], str) else None
    except ValueError:
        return None
    return day if day is not None and abs((day - utc).days) <= 1 else None


def last_good_day(expiry: Any) -> dt.date | None:
    """The last day a lot may be used: its expiry date (YYYY-MM-DD), or for a month as vials print it
    (YYYY-MM, "EXP 2027-03") that month's last day; None for anything else. FHIR's date type takes both."""
    if not isinstance(expiry, str) or not EXPIRY.fullmatch(expiry):
        return None
    try:
        if len(expiry) == 7:
            first = dt.date(int(expiry[:4]), int(expiry[5:]), 1)
            return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        return dt.date.fromisoformat(expiry)
    except ValueError:  # a month or day that does not exist
        return None


def record_problem(record: Any, *, now: float, vaccines: Mapping[str, str] | None = None) -> str | None:
    """The reason code for a record whose fields are not acceptable, or None (also checked on the device).
    ``vaccines``: the station's list; without it (the registry) any CVX-shaped code with a display."""
    if not isinstance(record, dict):
        return "record_invalid"
    vaccine = record.get("vaccine")
    if not isinstance(vaccine, str) or not CVX.fullmatch(vaccine) or (vaccines is not None and vaccine not in vaccines):
        return "vaccine_unknown"
    display = vaccine_name(record)
    if not isinstance(display, str) or not DISPLAY.fullmatch(display):
        return "vaccine_unknown"
    if not isinstance(record.get("lot"), str) or not LOT.fullmatch(record["lot"]):
        return "lot_invalid"
    expires = last_good_day(record.get("expiry"))
    if expires is None:
        return "expiry_invalid"
    occurred = record.get("occurred")
    if not _unix_seconds(occurred):
        return "record_invalid"
    day = _day_of(record, occurred)
    if day is None:
        return "record_invalid"
    if expires < day:  # the expiry date is a day at the site, not in UTC
        return "lot_expired"
    dose, series = record.get("dose"), record.get("series")
    if not isinstance(dose, int) or not isinstance(series, int) or not 1 <= dose <= series <= 10:
        return "dose_out_of_series"
    if record.get("route") not in ROUTES or record.get("site") not in SITES:
        return "route_or_site_invalid"
    if not isinstance(record.get("performer"), str) or not STAFF.fullmatch(record["performer"]):
        return "performer_invalid"
    if occurred > now + 300:
        return "record_invalid"
    return None


def occurred_problem(record: dict[str, Any], verified_at: float) -> str | None:
    """For a record ``record_problem`` accepted: ``occurred_before_verification`` when it says the vaccination
    happened more than ``OCCURRED_SLACK_S`` before the ALLOW it follows (``verified_at``, unix seconds)."""
    return "occurred_before_verification" if record["occurred"] < verified_at - OCCURRED_SLACK_S else None


MESSAGES = {
    "record_invalid": "The vaccination details are incomplete",
    "vaccine_unknown": "This vaccine is not on the station's list",
    "lot_invalid": "The lot number is not valid (letters, digits and dashes, at most 20)",
    "lot_expired": "This lot had expired on the day of the vaccination",
    "expiry_invalid": "The lot's expiry is not a date: YYYY-MM-DD, or YYYY-MM as printed on the vial",
    "dose_out_of_series": "The dose number is outside the vaccine's series",
    "route_or_site_invalid": "The route or body site is not one of the known codes",
    "performer_invalid": "The staff id of the vaccinator is missing or not valid",
    "occurred_before_verification": "The vaccination time is before the person was verified at the station: "
                                    "check the clock of the device that sent it",
}
