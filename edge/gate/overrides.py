"""What a second staff override of the same refusal is: one rule, applied by the gate before it runs the
staff member's session and by the registry when the override token arrives.

An override names the refusal it lifts. A DENY has a token, and its id names that one session for good: it is
overridden once. A RETRY mints no token (nothing was decided: no face the camera could take, a card that
would not scan), so its override names the card, ``card:<32 hex>``. A card is refused again on the next
visit, so "once" for a card cannot mean once ever: that locked a patient whom the camera cannot take out of
every later override at that gate. It means once per ``CARD_OVERRIDE_INTERVAL_S`` at one gate.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Seconds within which a card may have one override at a gate: long enough that one staff action cannot
#: be repeated for a second person on the same card at once (the per-staff and per-gate hourly limits bound
#: the rest), short enough that the holder's next visit can be let through again.
CARD_OVERRIDE_INTERVAL_S = 600.0
CARD_PREFIX = "card:"


def names_a_card(refused: str) -> bool:
    """Whether ``refused`` is a RETRY's card reference rather than a DENY's token id."""
    return refused.startswith(CARD_PREFIX)


def already_overridden(refused: str, earlier: Iterable[float], at: float) -> bool:
    """Whether an override at ``at`` (unix seconds) of ``refused`` comes second to one of the ``earlier``
    overrides of the same reference (their times): any earlier one for a DENY's token id, one within
    ``CARD_OVERRIDE_INTERVAL_S`` either side for a card (the registry may receive them out of order)."""
    if not names_a_card(refused):
        return any(True for _ in earlier)
    return any(abs(at - t) < CARD_OVERRIDE_INTERVAL_S for t in earlier)
