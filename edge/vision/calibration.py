"""Threshold calibration from a labelled folder (one sub-folder per person).

Genuine scores are all same-folder pairs, impostor scores all cross-folder pairs. FMR(t) is the share
of impostor pairs scoring >= t, FNMR(t) the share of genuine pairs scoring < t. ``threshold_for_fmr``
returns the smallest threshold whose empirical FMR is at or below the target; with N impostor pairs an
FMR below about 3/N cannot be shown (the rule of three), so the result says how far the data reaches.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from edge.vision.matcher import SFACE, FaceModel


@dataclass(frozen=True)
class ScoreSets:
    genuine: np.ndarray
    impostor: np.ndarray


def pair_scores(vectors: dict[str, np.ndarray], labels: dict[str, str], model: FaceModel = SFACE) -> ScoreSets:
    """Every pair's score under ``model``, split into same-person (genuine) and different-person pairs."""
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in itertools.combinations(sorted(vectors), 2):
        score = model.similarity(vectors[a], vectors[b])
        (genuine if labels[a] == labels[b] else impostor).append(score)
    return ScoreSets(np.array(genuine), np.array(impostor))


def error_rates(scores: ScoreSets, threshold: float) -> tuple[float | None, float | None]:
    """(FMR, FNMR) at ``threshold``; a rate with no pairs behind it (one person: no impostor pairs; one photo
    each: no genuine pairs) is None, unknown, never a reassuring 0."""
    fmr = float(np.mean(scores.impostor >= threshold)) if scores.impostor.size else None
    fnmr = float(np.mean(scores.genuine < threshold)) if scores.genuine.size else None
    return fmr, fnmr


def threshold_for_fmr(impostor: np.ndarray, target_fmr: float) -> float:
    """Smallest threshold with empirical FMR <= target (just above the allowed number of impostors)."""
    if impostor.size == 0:
        raise ValueError("no impostor pairs: need at least two people")
    allowed = int(np.floor(target_fmr * impostor.size))
    ordered = np.sort(impostor)[::-1]
    if allowed >= impostor.size:
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], np.inf))


def summary(values: np.ndarray) -> dict[str, float | int | None]:
    if values.size == 0:
        return {"n": 0, "min": None, "p5": None, "median": None, "p95": None, "max": None}
    return {"n": int(values.size), "min": float(values.min()), "p5": float(np.percentile(values, 5)),
            "median": float(np.median(values)), "p95": float(np.percentile(values, 95)), "max": float(values.max())}
