"""When an age band ends. A card carries its holder's age band, never a date of birth (docs/VACCINATION.md),
so a card issued for a year to a 13-year-old would still say ``child`` at 14: a teenager who may verify alone
would need a guardian, and the registry would keep refusing their face template. A card of band ``child``
or ``minor`` therefore says when its holder leaves the band (the 14th or 18th birthday, attested by the
hospital system like a delegation's coming of age), and the card ends then at the latest. ``adult`` does
not end.
"""

from __future__ import annotations

from registry.refusals import Refused

#: Bands that end (at 14 and at 18).
BANDS_THAT_END = frozenset({"child", "minor"})


class BandRefused(Refused):
    """A band and its end that do not fit (INVALID_ARGUMENT)."""

    invalid_argument = True


def band_limit(age_band: str | None, until: int, now: float) -> int | None:
    """The latest end (unix seconds) a card of ``age_band`` may have, given ``until`` (0: not given); None
    when the band does not end. Raises BandRefused: ``age_band_end_required`` (a child or minor band without
    its end), ``age_band_ended`` (an end already past), ``age_band_end_invalid`` (an end for a band that does
    not end)."""
    if age_band in BANDS_THAT_END:
        if until <= 0:
            raise BandRefused("age_band_end_required", f"a {age_band} card needs age_band_until: when the holder "
                                                       "leaves the band (unix seconds; never a date of birth)")
        if until <= now:
            raise BandRefused("age_band_ended", f"age_band_until is past: the holder is no longer a {age_band}")
        return int(until)
    if until:
        raise BandRefused("age_band_end_invalid", "only the child and minor bands end (age_band_until)")
    return None
