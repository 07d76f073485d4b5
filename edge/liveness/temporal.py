"""Temporal confirm cues over 1-2 s of natural movement, and the randomized challenge.

Planarity: the eyes and mouth corners of frame 0 and frame t define a homography (4 points, exact). If
the face were a plane (a photo or a screen, however it is waved), the nose tip would follow the same
homography; a real nose stands ~0.6 eye-distances in front of that plane, so under any head rotation it
leaves the prediction. The residual is measured in eye distances; its 75th percentile over the window
is the cue.

Challenge: when natural movement does not confirm, the gate asks for one gentle turn. Direction (left or
right), amplitude (8-15 degrees of yaw) and the moment of the prompt (0.3-1.0 s into the window) come from
HMAC-SHA256 of the session nonce, so a recording made before the session cannot know them. The turn must
happen after the prompt, in the asked direction, by the asked amplitude, and in depth; a slow, early or
too small answer gets one more, independent challenge from the same nonce. The nose residual
over sin(yaw change) estimates how far the nose stands out of the face plane, ~0.6 eye distances for a
head and ~0 for a photo tilted to fake a yaw, independent of the amplitude.
Never a smile or a blink: some patients cannot.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.quality import estimate_pose
from edge.vision.types import Face

PLANE_POINTS = [0, 1, 3, 4]  # eyes and mouth corners
NOSE = 2


def nose_residuals(faces: list[Face]) -> np.ndarray:
    """Per frame after the first: distance of the nose from its planar prediction, in eye distances."""
    if len(faces) < 2:
        return np.zeros(0)
    ref = faces[0].landmarks.astype(np.float32)
    out = []
    for face in faces[1:]:
        cur = face.landmarks.astype(np.float32)
        try:
            homography = cv2.getPerspectiveTransform(ref[PLANE_POINTS], cur[PLANE_POINTS])
        except cv2.error:
            continue
        predicted = cv2.perspectiveTransform(ref[NOSE][None, None], homography)[0, 0]
        out.append(float(np.linalg.norm(predicted - cur[NOSE]) / max(face.eye_distance, 1e-6)))
    return np.array(out)


def yaw_series(faces: list[Face]) -> np.ndarray:
    return np.array([estimate_pose(f.landmarks)[0] for f in faces])


@dataclass(frozen=True)
class Challenge:
    direction: str  # "left" or "right" (the person's own left/right)
    amplitude_deg: float
    prompt_at_s: float
    window_s: float = 2.5
    attempt: int = 0

    @classmethod
    def from_nonce(cls, nonce: bytes, key: bytes = b"edge-liveness-challenge", attempt: int = 0) -> Challenge:
        """The session's challenge; ``attempt`` 1 is the retry, drawn independently from the same nonce."""
        digest = hmac.new(key, nonce + (bytes([attempt]) if attempt else b""), hashlib.sha256).digest()
        return cls(direction="left" if digest[0] & 1 else "right",
                   amplitude_deg=8.0 + 7.0 * digest[1] / 255.0,
                   prompt_at_s=0.3 + 0.7 * digest[2] / 255.0, attempt=attempt)

    @property
    def prompt(self) -> str:
        return f"Please turn your head slightly to your {self.direction}"

    @property
    def yaw_sign(self) -> float:
        # Turning to one's own left moves the nose towards the image's right for a mirrored-free camera,
        # which estimate_pose reports as positive yaw.
        return 1.0 if self.direction == "left" else -1.0


#: Reasons after which the gate asks once more (pipeline ``challenge_retries``): the person may have been
#: slow, early or turned too little. A planar or swinging answer is what artefacts do: no second try.
RETRYABLE = frozenset({"challenge_not_completed", "challenge_wrong_direction", "challenge_anticipated",
                       "challenge_not_observed"})


def challenge_answered(challenge: Challenge, times: list[float], faces: list[Face], *,
                       min_depth: float = 0.3) -> tuple[bool, str]:
    """Did the tracked face turn as asked, after the prompt and in depth? Returns (ok, reason)."""
    if len(faces) < 4:
        return False, "challenge_too_few_frames"
    t = np.array(times) - times[0]
    yaw = yaw_series(faces)
    before = yaw[t < challenge.prompt_at_s]
    after_mask = (t >= challenge.prompt_at_s) & (t <= challenge.prompt_at_s + challenge.window_s)
    if before.size == 0 or not after_mask.any():
        return False, "challenge_not_observed"
    baseline = float(np.median(yaw[:3]))
    if float(((before - baseline) * challenge.yaw_sign).max(initial=0.0)) >= challenge.amplitude_deg / 2:
        return False, "challenge_anticipated"  # it turned before it was asked: a recording, or a guess
    if float(before.max() - before.min()) >= challenge.amplitude_deg:
        # A person waiting for the prompt faces the camera; a head already swinging both ways (a replayed
        # conversation) would answer a random prompt by chance.
        return False, "challenge_unsteady"
    moved = (yaw[after_mask] - baseline) * challenge.yaw_sign
    if moved.max() < challenge.amplitude_deg:
        wrong = (-(yaw[after_mask] - baseline) * challenge.yaw_sign).max() >= challenge.amplitude_deg
        return False, "challenge_wrong_direction" if wrong else "challenge_not_completed"
    if implied_nose_depth(faces, yaw, challenge.amplitude_deg / 2) < min_depth:
        return False, "challenge_planar"
    return True, "challenge_completed"


def implied_nose_depth(faces: list[Face], yaw: np.ndarray, min_turn_deg: float) -> float:
    """Median nose depth (eye distances) implied by the residual in frames turned >= ``min_turn_deg``.

    Under a yaw change of dyaw, a nose ``d`` eye-distances in front of the eye/mouth plane leaves the
    planar prediction by about d * |sin(dyaw)|; a real nose gives ~0.6, a photo ~0, whatever the amplitude.
    """
    residual = nose_residuals(faces)
    if residual.size == 0:
        return 0.0
    turn = np.abs(yaw[1:] - yaw[0])
    mask = turn >= min_turn_deg
    if not mask.any():
        return 0.0
    return float(np.median(residual[mask] / np.sin(np.radians(turn[mask]))))
