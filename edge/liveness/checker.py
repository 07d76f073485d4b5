"""Liveness fusion: deny cues veto, at least one confirm cue is required, and it fails closed.

No averaging of unrelated scores. The decision walks these steps and the first that fails decides:

1. acquisition: a face tracked through the window (not lost, not swapped), enough frames and time, large
   enough to measure, facing the camera, lit and sharp enough. Failures here are failure-to-acquire with a
   prompt ("Please step closer", "Please face the light"), never counted as attacks.
2. deny cues (any one vetoes): screen moire, a large glare blob, a bezel or paper edge around the face,
   and the PAD model's live probability when it is provisioned.
3. confirm cues (at least one): non-planar motion of the nose during natural movement, or, when that does
   not fire and a challenge was issued, the challenge answered in depth.

``score`` in the output is 0 when a deny cue fired or nothing confirmed, else the planarity residual over
twice its threshold, capped at 1: a margin, not a probability.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.liveness.cues import FrameCues, frame_cues
from edge.liveness.pad import PADModel
from edge.liveness.temporal import Challenge, challenge_answered, eye_travel, nose_residuals, yaw_series
from edge.liveness.tracking import Track, follow
from edge.vision.detector import FaceDetector
from edge.vision.quality import QualityLimits, estimate_pose
from edge.vision.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LivenessThresholds:
    """Site-profile thresholds (see docs/LIVENESS.md for the data behind the defaults)."""

    min_frames: int = 8
    min_duration_s: float = 0.5
    min_eye_distance_px: float = 18.0
    #: Pose, exposure and sharpness limits: the same object the face stage uses (site profile [face]).
    quality: QualityLimits = field(default_factory=QualityLimits)
    max_moire: float = 60.0
    max_glare: float = 0.35
    max_bezel: float = 0.55
    min_pad_live: float = 0.5
    min_planarity: float = 0.15
    min_nose_depth: float = 0.3
    min_turn_deg: float = 4.0
    min_eye_travel: float = 0.5
    cue_frames: int = 8
    #: Natural depth motion alone does not pass: a screen replaying a real video carries real 3-D motion
    #: (docs/LIVENESS.md). With this on, the nonce-bound challenge must be answered.
    require_challenge: bool = False


@dataclass
class LivenessResult:
    live: bool
    score: float
    cues: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    failure_to_acquire: bool = False
    track: Track | None = None
    prompts: list[str] = field(default_factory=list)

    def to_json(self, source: str) -> dict[str, Any]:
        return {"source": source, "live": self.live, "score": round(self.score, 4), "cues": self.cues,
                "reasons": self.reasons}


PROMPTS = {"face_too_small": "Please step closer to the camera", "no_face": "Please look at the camera",
           "face_lost": "Please stay in front of the camera", "face_turned": "Please face the camera",
           "face_changed": "Only one person in front of the camera, please",
           "face_too_dark": "Please face the light", "face_too_bright": "Please step out of the bright light",
           "face_blurred": "Please hold still for a moment", "too_few_frames": "Please stay in front of the camera"}


class LivenessChecker:
    def __init__(self, detector: FaceDetector, thresholds: LivenessThresholds | None = None,
                 pad: PADModel | None = None) -> None:
        self.detector = detector
        self.thresholds = thresholds or LivenessThresholds()
        self.pad = pad

    def detect_all(self, frames: Iterable[tuple[float, np.ndarray]]) -> tuple[list[tuple[float, list[Face]]],
                                                                               list[np.ndarray]]:
        detections, images = [], []
        for t, frame in frames:
            detections.append((t, self.detector.detect(frame)))
            images.append(frame)
        return detections, images

    def check(self, frames: Iterable[tuple[float, np.ndarray]], *,
              challenge: Challenge | None = None) -> LivenessResult:
        detections, images = self.detect_all(frames)
        return self.decide(detections, images, challenge=challenge)

    def _fail(self, reason: str, fta: bool, track: Track | None = None, cues: dict | None = None) -> LivenessResult:
        prompt = PROMPTS.get(reason)
        return LivenessResult(live=False, score=0.0, cues=cues or {}, reasons=[reason], failure_to_acquire=fta,
                              track=track, prompts=[prompt] if prompt else [])

    def decide(self, detections: list[tuple[float, list[Face]]], images: Sequence[np.ndarray | None], *,
               challenge: Challenge | None = None) -> LivenessResult:
        """``images[i]`` is the frame of ``detections[i]``, or None where the caller kept only the detections
        (the gate keeps a subset of a long window's frames); the cues read frames that were kept."""
        th = self.thresholds
        track = follow(detections)
        if not track.faces:
            return self._fail("no_face", True, track)
        if track.broken:
            return self._fail(track.broken, True, track)  # a swap or loss asks for a retry, it is no verdict
        duration = track.times[-1] - track.times[0]
        if len(track.faces) < th.min_frames or duration < th.min_duration_s:
            return self._fail("too_few_frames", True, track, {"frames": len(track.faces), "duration_s": duration})
        eye = float(np.median([f.eye_distance for f in track.faces]))
        if eye < th.min_eye_distance_px:
            return self._fail("face_too_small", True, track, {"eye_distance_px": eye})

        kept = [(face, image) for face, index in zip(track.faces, track.frame_indices, strict=True)
                if (image := images[index]) is not None]
        if not kept:
            return self._fail("too_few_frames", True, track, {"frames_kept": 0})
        chosen = [kept[i] for i in np.linspace(0, len(kept) - 1, min(th.cue_frames, len(kept))).round().astype(int)]
        per_frame: list[FrameCues] = [frame_cues(image, face) for face, image in chosen]
        poses = [estimate_pose(f.landmarks) for f in track.faces[: max(3, len(track.faces) // 3)]]  # before a turn
        quality = {"yaw_deg": float(np.median([abs(y) for y, _ in poses])),
                   "pitch_deg": float(np.median([abs(p) for _, p in poses])),
                   "brightness": float(np.median([c.brightness for c in per_frame])),
                   "sharpness": float(np.median([c.sharpness for c in per_frame]))}
        limits = th.quality
        turned = quality["yaw_deg"] > limits.max_yaw_deg or quality["pitch_deg"] > limits.max_pitch_deg
        problem = ("face_turned" if turned
                   else "face_too_dark" if quality["brightness"] < limits.min_brightness
                   else "face_too_bright" if quality["brightness"] > limits.max_brightness
                   else "face_blurred" if quality["sharpness"] < limits.min_sharpness else None)
        if problem:
            return self._fail(problem, True, track, {k: round(v, 1) for k, v in quality.items()})
        moire = float(np.median([c.moire for c in per_frame]))
        glare = float(np.median([c.glare for c in per_frame]))
        bezel = float(np.median([c.bezel for c in per_frame]))
        cues: dict[str, Any] = {
            "moire": {"value": round(moire, 3), "max": th.max_moire, "fired": moire > th.max_moire},
            "glare": {"value": round(glare, 3), "max": th.max_glare, "fired": glare > th.max_glare},
            "bezel": {"value": round(bezel, 3), "max": th.max_bezel, "fired": bezel > th.max_bezel},
            "texture": {"sharpness": round(float(np.median([c.sharpness for c in per_frame])), 1),
                        "chroma": round(float(np.median([c.chroma for c in per_frame])), 2),
                        "colour_diversity": round(float(np.median([c.colour_diversity for c in per_frame])), 4),
                        "lbp_uniformity": round(float(np.median([c.lbp_uniformity for c in per_frame])), 4),
                        "fired": False, "role": "reported only"},
        }
        if self.pad is not None:
            live_p = float(np.mean([self.pad.live_probability(image, face) for face, image in chosen[:5]]))
            cues["pad_model"] = {"value": round(live_p, 4), "min": th.min_pad_live, "fired": live_p < th.min_pad_live}
        else:
            cues["pad_model"] = {"value": None, "fired": False, "role": "not provisioned"}
        residual = nose_residuals(track.faces)
        planarity = float(np.percentile(residual, 75)) if residual.size else 0.0
        yaw = yaw_series(track.faces)
        cues["planarity"] = {"value": round(planarity, 4), "min": th.min_planarity,
                             "fired": planarity >= th.min_planarity, "kind": "confirm"}
        cues["head_pose"] = {"yaw_range_deg": round(float(yaw.max() - yaw.min()), 1), "kind": "tracked"}
        cues["pulse"] = {"value": None, "fired": False, "role": "not implemented"}
        cues["frames"] = len(track.faces)
        cues["eye_distance_px"] = round(eye, 1)

        denies = [name for name in ("moire", "glare", "bezel", "pad_model") if cues[name]["fired"]]
        if denies:
            return LivenessResult(live=False, score=0.0, cues=cues, track=track,
                                  reasons=[f"presentation_attack_{name}" for name in denies])
        if cues["planarity"]["fired"] and not th.require_challenge:
            return LivenessResult(live=True, score=min(1.0, planarity / (2 * th.min_planarity)), cues=cues,
                                  reasons=["depth_motion_confirmed"], track=track)
        if challenge is None:
            return LivenessResult(live=False, score=0.0, cues=cues, track=track, reasons=["challenge_required"],
                                  prompts=[])
        # The prompt came prompt_at_s after the window's first frame, which may have shown no face yet.
        start = detections[0][0]
        travel = eye_travel(challenge, track.times, track.faces, yaw, start=start)
        ok, why = challenge_answered(challenge, track.times, track.faces, yaw=yaw, travel=travel,
                                     min_depth=th.min_nose_depth, min_turn_deg=th.min_turn_deg,
                                     min_eye_travel=th.min_eye_travel, start=start)
        cues["challenge"] = {"direction": challenge.direction, "min_turn_deg": th.min_turn_deg,
                             "prompt_at_s": round(challenge.prompt_at_s, 2), "attempt": challenge.attempt,
                             "eye_travel": None if np.isnan(travel) else round(travel, 2),
                             "min_eye_travel": th.min_eye_travel, "fired": ok, "kind": "confirm"}
        return LivenessResult(live=ok, score=min(1.0, planarity / (2 * th.min_planarity)) if ok else 0.0, cues=cues,
                              reasons=[why], track=track, prompts=[challenge.prompt])


def with_and_without_pad(detector: FaceDetector, thresholds: LivenessThresholds,
                         pad_folder: Path | None) -> dict[str, LivenessChecker]:
    """Evaluation checkers on one detector: the default install's (``without_pad``) and, when ``pad_folder``
    holds the PAD models, the same thresholds with them (``with_pad``); one detection pass serves both."""
    checkers = {"without_pad": LivenessChecker(detector, thresholds)}
    if pad_folder is not None:
        checkers["with_pad"] = LivenessChecker(detector, thresholds, PADModel.from_dir(pad_folder))
    return checkers
