"""1:1 matching: what a template holds for each face model, and how two are scored against a threshold.

A site chooses its face model (``face.model``); the model id is part of every template's record and of the
card's face commitment. Every model's template begins with SFace's 128 values, so a gate reads a card made
by the other model on that shared part, scored as SFace (``FaceMatcher.for_template``): a site that turns on
``sface+dlib`` keeps its holders' SFace cards working, and their templates move to the fused model as the
cards are renewed, instead of every holder being enrolled again on the day of the switch.

- ``sface``: SFace's 128-d L2-normalised embedding, scored by cosine similarity. 0.363 is SFace's published
  operating point; the shipped threshold is 0.52 (docs/THRESHOLDS.md).
- ``sface+dlib``: the SFace embedding followed by dlib's ResNet vector (128 raw values, compared by Euclidean
  distance ``d``). The score is ``0.7 * cosine + 0.3 * (1 - d)``: on the shared portraits ``1 - d`` has
  almost the same impostor mean and spread as SFace's cosine (0.143 / 0.085 against 0.131 / 0.084), so no
  fitted constants are needed, and SFace keeps the larger weight because dlib's model separates East Asian
  faces much less well (docs/THRESHOLDS.md has the data behind both numbers).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.errors import FaceChangedError, NoFaceError, SecurityError

DEFAULT_THRESHOLD = 0.363
SFACE_DIM = 128
DLIB_DIM = 128


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"embeddings differ in size: {a.shape[0]} vs {b.shape[0]}")
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom > 0 else 0.0


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


@dataclass(frozen=True)
class FaceModel:
    """One face model's template: its id, size (float32 values) and scoring rule."""

    name: str
    model_id: str
    dim: int
    #: Shipped threshold of the score (docs/THRESHOLDS.md).
    threshold: float
    #: Weight of SFace's cosine in the score; the rest goes to dlib's ``1 - distance``.
    sface_weight: float = 1.0

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a = np.asarray(a, dtype=np.float32).reshape(-1)
        b = np.asarray(b, dtype=np.float32).reshape(-1)
        if a.shape != (self.dim,) or b.shape != (self.dim,):
            raise ValueError(f"{self.name} compares {self.dim}-value templates, got {a.shape[0]} and {b.shape[0]}")
        score = cosine_similarity(a[:SFACE_DIM], b[:SFACE_DIM])
        if self.dim == SFACE_DIM:
            return score
        distance = float(np.linalg.norm(a[SFACE_DIM:] - b[SFACE_DIM:]))
        return self.sface_weight * score + (1.0 - self.sface_weight) * (1.0 - distance)

    def combine(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """One template from several embeddings of the same face: SFace's part averaged and renormalised,
        dlib's part averaged (its distances are meaningful on the raw scale)."""
        stacked = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), self.dim)
        mean = stacked.mean(axis=0)
        mean[:SFACE_DIM] = _unit(mean[:SFACE_DIM])
        return mean.astype(np.float32)

    def check(self, data: bytes) -> np.ndarray:
        """Bytes as this model's template, or SecurityError(template_invalid): ``dim`` little-endian float32
        values, all finite; SFace's part of unit L2 norm, dlib's of a norm dlib's vectors have (0.5 to 3)."""
        if len(data) != self.dim * 4:
            raise SecurityError(f"a {self.name} template is {self.dim * 4} bytes ({self.dim} float32), got "
                                f"{len(data)}", code="template_invalid")
        vector = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(vector)):
            raise SecurityError("template holds non-finite values", code="template_invalid")
        if abs(float(np.linalg.norm(vector[:SFACE_DIM])) - 1.0) > 1e-3:
            raise SecurityError("template is not unit-norm", code="template_invalid")
        if self.dim > SFACE_DIM and not 0.5 <= float(np.linalg.norm(vector[SFACE_DIM:])) <= 3.0:
            raise SecurityError("template's dlib part has an implausible norm", code="template_invalid")
        return vector


SFACE = FaceModel(name="sface", model_id="sface-2021dec-fp32", dim=SFACE_DIM, threshold=0.52)
SFACE_DLIB = FaceModel(name="sface+dlib", model_id="sface-2021dec-fp32+dlib-resnet-v1", dim=SFACE_DIM + DLIB_DIM,
                       threshold=0.49, sface_weight=0.7)
FACE_MODELS = {model.name: model for model in (SFACE, SFACE_DLIB)}


def face_model_by_id(model_id: str) -> FaceModel:
    """The face model a template's model id names; SecurityError(template_invalid) for an unknown id."""
    for model in FACE_MODELS.values():
        if model.model_id == model_id:
            return model
    raise SecurityError(f"unknown face model id {model_id!r}", code="template_invalid")


@dataclass(frozen=True)
class MatchResult:
    similarity: float
    threshold: float

    @property
    def match(self) -> bool:
        return self.similarity >= self.threshold


class FaceMatcher:
    """Scores two templates of one face model against a threshold (the model's shipped one by default).

    ``sface_threshold`` is the threshold for cards whose template is SFace alone when ``model`` is not SFace
    (default: SFace's shipped 0.52, or a site's own calibrated SFace threshold)."""

    def __init__(self, model: FaceModel = SFACE, threshold: float | None = None,
                 sface_threshold: float | None = None) -> None:
        threshold = model.threshold if threshold is None else threshold
        sface_threshold = SFACE.threshold if sface_threshold is None else sface_threshold
        for value in (threshold, sface_threshold):
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"a match threshold lies in [-1, 1], got {value}")
        self.model = model
        self.threshold = threshold
        self.sface_threshold = threshold if model is SFACE else sface_threshold

    def match(self, a: np.ndarray, b: np.ndarray) -> MatchResult:
        return MatchResult(similarity=self.model.similarity(a, b), threshold=self.threshold)

    def for_template(self, model_id: str) -> FaceMatcher:
        """The matcher for a card whose template was made by ``model_id`` on a gate of this matcher's model:
        this one for the same model; for the other, SFace on the part both templates share, at this gate's
        SFace threshold (a fused card at an SFace gate: the gate's own threshold). SecurityError
        (template_mismatch) for a model id this gate does not know."""
        if model_id == self.model.model_id:
            return self
        try:
            face_model_by_id(model_id)
        except SecurityError as exc:
            raise SecurityError(f"the card's template is {model_id!r}, a face model this gate does not know",
                                code="template_mismatch") from exc
        return FaceMatcher(SFACE, self.sface_threshold)

    def score(self, probe: np.ndarray, template: np.ndarray) -> MatchResult:
        """A probe of the gate's model against a card's template of this matcher's model (``for_template``):
        both begin with SFace's values, so each is cut to this model's length before it is scored."""
        dim = self.model.dim
        return self.match(np.asarray(probe).reshape(-1)[:dim], np.asarray(template).reshape(-1)[:dim])

    def enrollment_template(self, vectors: Sequence[np.ndarray]) -> np.ndarray:
        """One template from captures of one sitting, in the order taken, that must all be one person.

        Each capture must score at least the threshold against the one before it. A template averaged over
        two people (a child and the guardian taking turns in view) lies between them and would let either
        pass as the card's holder. Consecutive captures of one person score far above the threshold (every
        frame of the twelve shared live clips and the demo speaker: lowest 0.63, SFace), two people far
        below it (frames of different clips: highest 0.38).
        """
        if not vectors:
            raise NoFaceError("no usable face in the enrollment frames")
        for before, after in itertools.pairwise(vectors):
            if self.model.similarity(before, after) < self.threshold:
                raise FaceChangedError("the enrollment frames show more than one person: enroll again "
                                       "with only the card holder in view")
        return self.model.combine(vectors)
