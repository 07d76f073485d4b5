"""How often a recording answers the challenge by chance (issue 15): the challenge alone against a perfect replay.

An attacker who replays a recording of the card holder without watching the prompt (or injects it into the
camera path, out of scope for the camera cues) gets a random prompt. This measures how often ordinary
head motion answers it: every 0.5 s of the twelve real clips (shared/data/video/live) starts a 3.5 s window
with a fresh random nonce, and the challenge rules decide on the clip's own frames, with no screen in
between (so the moire, glare and bezel cues, which stop every screen replay in
bench/liveness_challenge_replay.py, see nothing to stop). A rate here is what the challenge contributes on its
own; a gate relies on the camera cues (and the PAD model when provisioned) for the rest.

"With the gate's retry": after a refusal the gate asks again (temporal.RETRYABLE), the recording plays on,
so the second challenge (``attempt=1`` of the same nonce) is judged on the window that begins
``edge.gate.window.RETRY_SETTLE_S`` after the first ends (the time the gate gives a person to read the hint).

Run: .venv/bin/python bench/liveness_challenge_chance.py  (writes bench/results/liveness_challenge_chance.json)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import live_clips, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.gate.window import RETRY_SETTLE_S
from edge.liveness.checker import LivenessChecker, LivenessThresholds
from edge.liveness.evaluation import upper_bound_95
from edge.liveness.presentations import FPS, WINDOW_FRAMES
from edge.liveness.temporal import RETRYABLE, Challenge

STEP = int(FPS // 2)  # a window every 0.5 s
SETTLE_FRAMES = int(round(RETRY_SETTLE_S * FPS))  # frames between a refused answer and the retry's window


def judge(checker: LivenessChecker, detections: list, images: list, first: int, challenge: Challenge):
    """The checker's decision on the window of the recording that starts at frame ``first``."""
    window = [(t - detections[first][0], faces) for t, faces in detections[first:first + WINDOW_FRAMES]]
    return checker.decide(window, images[first:first + WINDOW_FRAMES], challenge=challenge)


def main() -> None:
    stage = build_face_stage(load_config())
    checker = LivenessChecker(stage.detector, LivenessThresholds(require_challenge=True))
    rng = np.random.default_rng(15)
    outcomes: collections.Counter = collections.Counter()
    per_clip = {}
    accepted_with_retry = 0
    for clip, frames in live_clips():
        detections, images = checker.detect_all(frames)
        accepted = windows = retried = 0

        for first in range(0, len(detections) - WINDOW_FRAMES + 1, STEP):
            nonce = rng.bytes(16)
            result = judge(checker, detections, images, first, Challenge.from_nonce(nonce))
            outcome = "fta" if result.failure_to_acquire else result.reasons[0]
            outcomes[outcome] += 1
            windows += outcome != "fta"
            accepted += result.live
            second = first + WINDOW_FRAMES + SETTLE_FRAMES
            if not result.live and outcome in RETRYABLE and second + WINDOW_FRAMES <= len(detections):
                retried += judge(checker, detections, images, second, Challenge.from_nonce(nonce, attempt=1)).live
        accepted_with_retry += accepted + retried
        per_clip[clip.name] = {"acquired_windows": windows, "answered_by_chance": accepted,
                               "answered_with_the_retry": accepted + retried}
        print(clip.name, per_clip[clip.name], flush=True)
    acquired = sum(v for k, v in outcomes.items() if k != "fta")
    chance = outcomes["challenge_completed"]
    report = {"windows": sum(outcomes.values()), "acquired": acquired, "answered_by_chance": chance,
              "rate": chance / acquired if acquired else None, "rate_upper95": upper_bound_95(chance, acquired),
              "outcomes": dict(outcomes), "answered_with_the_retry": accepted_with_retry,
              "rate_with_the_retry": accepted_with_retry / acquired if acquired else None,
              "rate_with_the_retry_upper95": upper_bound_95(accepted_with_retry, acquired),
              "retryable": sorted(RETRYABLE)}
    print(report)
    print(save("liveness_challenge_chance", {"step_s": STEP / FPS, "per_clip": per_clip, "report": report}))


if __name__ == "__main__":
    main()
