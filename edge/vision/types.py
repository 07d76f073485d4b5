"""Value objects passed between the face-stage components."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates.

    ``box`` is (x, y, width, height) in pixels; ``landmarks`` is a (5, 2) float32 array in the order
    right eye, left eye, nose tip, right mouth corner, left mouth corner (the subject's right, i.e. the
    image's left for a frontal face); ``score`` is the detector confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres in pixels: the resolution that matters for recognition."""
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))


@dataclass(frozen=True)
class Quality:
    """Face-quality measurements; ``reasons`` is empty when every gate passed."""

    eye_distance_px: float
    yaw_deg: float
    pitch_deg: float
    sharpness: float
    brightness: float
    reasons: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class FaceEmbedding:
    """The chosen face's template vector (the face model's layout, edge/vision/matcher.py), with how it was
    chosen."""

    vector: np.ndarray
    face: Face
    faces_found: int
    quality: Quality
