"""Challenge-mode presentations for evaluation (``edge eval liveness-set``, bench/).

A challenge presentation only means something against its prompt, so each one is made for, and kept
with, the session nonce it answers:

    bona fide        a real head turn from a clip, cut so that the nonce's prompt comes a reaction time
                     (0.3-0.7 s) before the turn; nonces are drawn until the direction matches the turn
    photo answering  a sheet (flat, or bent around either axis) turned the asked way 0.3-0.7 s after the
                     prompt, by 25-45 degrees: a sheet shows far less apparent head yaw than its own turn,
                     so an attacker overdoes it
    replayed turn    the bona fide cut shown on a screen (``attacks.replay_attack``)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.liveness.temporal import Challenge, yaw_series
from edge.liveness.tracking import follow
from edge.vision.types import Face

Presentation = list[tuple[float, np.ndarray]]

FPS = 30.0
#: 3.5 s at 30 fps: the latest prompt (1.0 s) plus the answer window (2.5 s).
WINDOW_FRAMES = 105


def turn_onsets(times: list[float], yaw: np.ndarray) -> list[tuple[float, float]]:
    """(onset s, sign of the yaw change) for turns of >= 8 degrees within 1.5 s after >= 0.4 s steady.

    The onset is the last frame before the head leaves the steady pose by 2 degrees: when the person
    began to turn, which is what a prompt must precede.
    """
    onsets: list[tuple[float, float]] = []
    t = np.array(times)
    i = 0
    while i < len(t):
        steady = (t <= t[i]) & (t >= t[i] - 0.4)
        if steady.sum() >= 8 and np.ptp(yaw[steady]) < 4.0:
            ahead = np.flatnonzero((t > t[i]) & (t <= t[i] + 1.5))
            if ahead.size:
                change = yaw[ahead] - yaw[i]
                peak = change[np.argmax(np.abs(change))]
                if abs(peak) >= 8.0:
                    leaves = int(ahead[np.argmax(np.abs(change) >= 2.0)])
                    onsets.append((float(t[leaves - 1]), float(np.sign(peak))))
                    i = int(np.searchsorted(t, t[leaves] + 2.0))
                    continue
        i += 1
    return onsets


@dataclass(frozen=True)
class TurnCut:
    """A bona fide challenge presentation: frames [first, first + WINDOW_FRAMES) of a 30 fps clip."""

    nonce: bytes
    challenge: Challenge
    first: int


def cut_for_turn(clip_frames: int, onset_s: float, sign: float, rng: np.random.Generator) -> TurnCut | None:
    """A nonce whose direction matches the turn and the window in which its prompt precedes the turn by a
    reaction time; None when the clip starts too late or ends too early for it."""
    while True:
        nonce = rng.bytes(16)
        challenge = Challenge.from_nonce(nonce)
        if challenge.yaw_sign == sign:
            break
    start = onset_s - float(rng.uniform(0.3, 0.7)) - challenge.prompt_at_s
    first = int(round(start * FPS))
    if start < 0 or clip_frames - first < WINDOW_FRAMES * 0.8:
        return None
    return TurnCut(nonce, challenge, first)


def turn_cuts(frames: Presentation, detections: list[tuple[float, list[Face]]],
              rng: np.random.Generator) -> Iterator[tuple[TurnCut, Presentation]]:
    """Every bona fide challenge presentation in one clip: its cut (with the nonce) and its frames, the
    times restarting at 0. ``detections`` are the clip's faces per frame (a steady track of >= 30 needed)."""
    track = follow(detections)
    if len(track.faces) < 30:
        return
    for onset, sign in turn_onsets(track.times, yaw_series(track.faces)):
        cut = cut_for_turn(len(frames), onset, sign, rng)
        if cut is None:
            continue
        t0 = frames[cut.first][0]
        yield cut, [(t - t0, frame) for t, frame in frames[cut.first:cut.first + WINDOW_FRAMES]]


def answering_turn(challenge: Challenge, rng: np.random.Generator) -> Callable[[float], float]:
    """Sheet turn in degrees over time (for ``attacks.bent_photo_attack``): still, then a smooth turn in
    the asked direction after a reaction of 0.3-0.7 s, over 0.4-0.8 s."""
    start = challenge.prompt_at_s + float(rng.uniform(0.3, 0.7))
    duration = float(rng.uniform(0.4, 0.8))
    # Turning the sheet by +x degrees shows negative estimated yaw (measured), so the sign is flipped.
    target = -challenge.yaw_sign * float(rng.uniform(25, 45))

    def yaw_deg_at(t: float) -> float:
        x = min(1.0, max(0.0, (t - start) / duration))
        return target * x * x * (3 - 2 * x)
    return yaw_deg_at
