"""1:1 matching: cosine similarity of L2-normalised embeddings against a threshold.

The default threshold is SFace's published operating point (cosine 0.363); docs/THRESHOLDS.md checks it
on data and explains how a site derives its own from a target false-match rate (``edge calibrate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.363


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape[0]} vs {b.shape[0]}")
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom > 0 else 0.0


@dataclass(frozen=True)
class MatchResult:
    similarity: float
    threshold: float

    @property
    def match(self) -> bool:
        return self.similarity >= self.threshold


class CosineMatcher:
    def __init__(self, threshold: float = DEFAULT_THRESHOLD) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"a cosine threshold lies in [-1, 1], got {threshold}")
        self.threshold = threshold

    def match(self, a: np.ndarray, b: np.ndarray) -> MatchResult:
        return MatchResult(similarity=cosine_similarity(a, b), threshold=self.threshold)
