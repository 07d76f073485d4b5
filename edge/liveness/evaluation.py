"""ISO/IEC 30107-3 style metrics over a folder of presentations.

Layout: DIR/live/ITEM, DIR/attack_<species>/ITEM, each ITEM a video file or a folder of frames.

    APCER(species)  share of that species' attack presentations accepted as live
    APCER_AP        the worst species (ISO 30107-3 reports the maximum over species of one level)
    BPCER           share of live presentations refused (failure-to-acquire excluded, reported apart)
    BPCER@APCER1%   BPCER at the smallest score threshold whose APCER_AP <= 1 %
    FTA             failure-to-acquire rate per class (no face, face too small, too few frames)

With zero errors in N trials the 95 % upper bound is ~3/N (rule of three); otherwise a Wilson bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    label: str  # "live" or "attack_<species>"
    live: bool
    score: float
    fta: bool


def upper_bound_95(errors: int, n: int) -> float | None:
    if n == 0:
        return None
    if errors == 0:
        return min(1.0, 3.0 / n)
    z = 1.96
    p = errors / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / (1 + z * z / n))


def metrics(outcomes: list[Outcome]) -> dict:
    species = sorted({o.label for o in outcomes if o.label != "live"})
    live = [o for o in outcomes if o.label == "live"]
    report: dict = {"attacks": {}, "live": {}}
    apcers = []
    for name in species:
        items = [o for o in outcomes if o.label == name]
        acquired = [o for o in items if not o.fta]
        accepted = sum(o.live for o in acquired)
        rate = accepted / len(acquired) if acquired else None
        report["attacks"][name] = {"presentations": len(items), "acquired": len(acquired), "accepted": accepted,
                                   "apcer": rate, "apcer_upper95": upper_bound_95(accepted, len(acquired)),
                                   "fta": (len(items) - len(acquired)) / len(items) if items else None}
        if rate is not None:
            apcers.append(rate)
    acquired_live = [o for o in live if not o.fta]
    refused = sum(not o.live for o in acquired_live)
    report["live"] = {"presentations": len(live), "acquired": len(acquired_live), "refused": refused,
                      "bpcer": refused / len(acquired_live) if acquired_live else None,
                      "bpcer_upper95": upper_bound_95(refused, len(acquired_live)),
                      "fta": (len(live) - len(acquired_live)) / len(live) if live else None}
    report["apcer_ap"] = max(apcers) if apcers else None
    report["bpcer_at_apcer_1pct"] = _bpcer_at_apcer(outcomes, species, 0.01)
    return report


def _bpcer_at_apcer(outcomes: list[Outcome], species: list[str], target: float) -> float | None:
    live = [o.score if o.live else 0.0 for o in outcomes if o.label == "live" and not o.fta]
    if not live or not species:
        return None
    candidates = sorted({0.0, *[o.score for o in outcomes]}) + [math.inf]
    for threshold in candidates:
        worst = 0.0
        for name in species:
            attack = [o.score if o.live else 0.0 for o in outcomes if o.label == name and not o.fta]
            if attack:
                worst = max(worst, sum(s > threshold for s in attack) / len(attack))
        if worst <= target:
            return sum(s <= threshold for s in live) / len(live)
    return None
