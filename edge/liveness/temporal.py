"""Temporal confirm cues over 1-2 s of natural movement, and the randomized challenge.

Planarity: the eyes and mouth corners of frame 0 and frame t define a homography (4 points, exact). If
the face were a plane (a photo or a screen, however it is waved), the nose tip would follow the same
homography; a real nose stands ~0.6 eye-distances in front of that plane, so under any head rotation it
leaves the prediction. The residual is measured in eye distances; its 75th percentile over the window
is the cue.

Challenge: when natural movement does not confirm, the gate asks for one gentle turn. Direction (left or
right) and the moment of the prompt (0.3-1.0 s into the window) come from HMAC-SHA256 of the session
nonce, so a recording made before the session cannot know them. The turn is measured from the pose at
the prompt and must go the asked way by at least ``min_turn_deg`` within the answer window, in depth, and
about a neck:

- depth: the nose residual over sin(yaw change) estimates how far the nose stands out of the face plane,
  ~0.6 eye distances for a head. Geometry says ~0 for a flat photo, but YuNet places the nose where a
  face's would be: photos answering the prompt, flat ones included, read 0.37-1.19 (median 0.61;
  bench/liveness_challenge_cues.py), so this test stops none of them and the pivot does the work;
- pivot: a head turns about the neck, 1-1.5 eye distances behind the eyes, so the eyes travel sideways
  with the turn (travel over sin(yaw change) ~1-1.5 eye distances on the real clips); a sheet, flat or
  bent, held and turned about its own middle keeps them in place (~0). With five landmarks the depth test
  alone is circular for a sheet bent around a vertical axis (its nose stands out too, and the yaw is read
  from that nose); the pivot is read from the eyes instead.

A swinging, slow, small, wrong-way or pivot-less answer gets one more, independent challenge from the same
nonce, with a hint of what to do differently.
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
    prompt_at_s: float
    window_s: float = 2.5
    attempt: int = 0

    @classmethod
    def from_nonce(cls, nonce: bytes, key: bytes = b"edge-liveness-challenge", attempt: int = 0) -> Challenge:
        """The session's challenge; ``attempt`` 1 is the retry, drawn independently from the same nonce."""
        digest = hmac.new(key, nonce + (bytes([attempt]) if attempt else b""), hashlib.sha256).digest()
        return cls(direction="left" if digest[0] & 1 else "right", prompt_at_s=0.3 + 0.7 * digest[2] / 255.0,
                   attempt=attempt)

    @property
    def prompt(self) -> str:
        return f"Please turn your head slightly to your {self.direction}"

    @property
    def yaw_sign(self) -> float:
        # Turning to one's own left moves the nose towards the image's right for a mirrored-free camera,
        # which estimate_pose reports as positive yaw.
        return 1.0 if self.direction == "left" else -1.0


#: Reasons after which the gate asks once more (pipeline ``challenge_retries``), with what it tells the
#: person: they may have been moving when the prompt came, slow, turned too little or the wrong way, or
#: turned with the shoulders. A planar answer is what artefacts do: no second try. (A pivot-less or a
#: swinging answer is what a held sheet or a replayed conversation does too; both are retried because
#: people give them as well, and the retry counts in the gate's failure limiter, so it buys an attacker
#: no attempt beyond ``max_failures``.)
RETRY_HINTS = {
    "challenge_unsteady": "Please hold still and look at the camera, then follow the next prompt",
    "challenge_not_completed": "Please turn your head a little further",
    "challenge_wrong_direction": "Please turn the way the next prompt asks",
    "challenge_not_observed": "Please stay in front of the camera",
    "challenge_pivoted": "Please turn only your head, keeping your body still",
}
RETRYABLE = frozenset(RETRY_HINTS)


def _median3(values: np.ndarray) -> np.ndarray:
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.asarray(np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0))


def challenge_answered(challenge: Challenge, times: list[float], faces: list[Face], *, min_depth: float = 0.3,
                       min_turn_deg: float = 4.0, min_eye_travel: float = 0.5,
                       max_sway_deg: float = 12.0, yaw: np.ndarray | None = None,
                       travel: float | None = None, start: float | None = None) -> tuple[bool, str]:
    """Did the tracked face turn as asked, after the prompt, in depth and about a neck? Returns (ok, reason).

    ``min_turn_deg``: apparent yaw from the pose at the prompt (median of 3 frames against landmark
    jitter); ``max_sway_deg``: yaw range before the prompt above which the head was already swinging (a
    replayed conversation answers a random prompt by chance); ``min_eye_travel``: see ``eye_travel``;
    ``yaw``: ``yaw_series(faces)`` and ``travel``: ``eye_travel(...)`` when the caller has them already;
    ``start``: when the challenge's clock began (the window's first frame, which may have had no face), in
    the clock of ``times``; the prompt came ``prompt_at_s`` after it. Default: the first face's time.
    """
    if len(faces) < 4:
        return False, "challenge_too_few_frames"
    t = np.array(times) - (times[0] if start is None else start)
    raw = yaw_series(faces) if yaw is None else yaw
    asked = _median3(raw) * challenge.yaw_sign  # positive: the asked way
    before = np.flatnonzero(t < challenge.prompt_at_s)
    after = np.flatnonzero((t >= challenge.prompt_at_s) & (t <= challenge.prompt_at_s + challenge.window_s))
    if before.size < 2 or after.size == 0:
        return False, "challenge_not_observed"
    if float(np.ptp(asked[before])) >= max_sway_deg:
        return False, "challenge_unsteady"
    turned = asked[after] - float(np.median(asked[before[-4:]]))
    if turned.max() < min_turn_deg:
        return False, "challenge_wrong_direction" if (-turned).max() >= min_turn_deg else "challenge_not_completed"
    if implied_nose_depth(faces, raw, min_turn_deg / 2) < min_depth:
        return False, "challenge_planar"
    if travel is None:
        travel = eye_travel(challenge, times, faces, raw, start=start)
    if not travel >= min_eye_travel:  # NaN (no measurable turn) fails too
        return False, "challenge_pivoted"
    return True, "challenge_completed"


def eye_travel(challenge: Challenge, times: list[float], faces: list[Face], yaw: np.ndarray | None = None,
               start: float | None = None) -> float:
    """Sideways travel of the eye midpoint along the eye line, over sin(apparent yaw change), in eye
    distances, at the peak of the answer against the last 0.6 s before the prompt (medians of 5 frames).

    ~1-1.5 for a head (it pivots at the neck, behind the eyes), ~0 for a sheet turned about its middle;
    NaN when the turn is under 2 degrees or there is no steady pose before the prompt. ``start``: as for
    ``challenge_answered``.
    """
    t = np.array(times) - (times[0] if start is None else start)
    yaw = yaw_series(faces) if yaw is None else yaw
    before = np.flatnonzero((t < challenge.prompt_at_s) & (t >= challenge.prompt_at_s - 0.6))
    after = np.flatnonzero((t >= challenge.prompt_at_s) & (t <= challenge.prompt_at_s + challenge.window_s))
    if before.size < 2 or after.size == 0:
        return float("nan")
    landmarks = np.array([f.landmarks for f in faces], dtype=np.float64)
    eye_mid = landmarks[:, :2].mean(axis=1)
    eye_line = np.median(landmarks[before, 1] - landmarks[before, 0], axis=0)
    eye_distance = float(np.linalg.norm(eye_line))
    start_yaw, start_mid = float(np.median(yaw[before])), np.median(eye_mid[before], axis=0)
    peak = int(after[np.argmax(np.abs(yaw[after] - start_yaw))])
    around = slice(max(peak - 2, 0), peak + 3)
    change = float(np.median(yaw[around])) - start_yaw
    if abs(change) < 2.0 or eye_distance < 1e-6:
        return float("nan")
    travel = float((np.median(eye_mid[around], axis=0) - start_mid) @ (eye_line / eye_distance)) / eye_distance
    return travel / float(np.sin(np.radians(change)))


def implied_nose_depth(faces: list[Face], yaw: np.ndarray, min_turn_deg: float) -> float:
    """Median nose depth (eye distances) implied by the residual in frames turned >= ``min_turn_deg``.

    Under a yaw change of dyaw, a nose ``d`` eye-distances in front of the eye/mouth plane leaves the
    planar prediction by about d * |sin(dyaw)|; a real nose gives ~0.6 whatever the amplitude. A photo would
    give ~0 if its landmarks followed the print; YuNet's do not (0.37-1.19 on photos, module docstring).
    """
    residual = nose_residuals(faces)
    if residual.size == 0:
        return 0.0
    turn = np.abs(yaw[1:] - yaw[0])
    mask = turn >= min_turn_deg
    if not mask.any():
        return 0.0
    return float(np.median(residual[mask] / np.sin(np.radians(turn[mask]))))
