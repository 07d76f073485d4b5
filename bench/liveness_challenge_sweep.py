"""The challenge rule's dials (issue 15): turn demand and eye travel, on real people and photos.

With five YuNet landmarks the depth test (nose residual over sin of the apparent yaw) is circular: the
apparent yaw is read from the nose, so a bent sheet whose nose stands out of its eye/mouth plane yields a
head-like "depth" at any turn. Under the rule shipped until 2026-11-23 (the nonce's 8-15 degrees from the
window start) the amplitude demand was what stopped photos, one dial trading people for photos. Eye travel
(temporal.eye_travel: a head pivots at the neck, a held sheet about its middle) is a second, independent
measure. This bench judges the same presentations with the shipped rule and with the rule measured from the
pose at the prompt (median-of-3 smoothed yaw, sway limit 12 degrees) at fixed turn demands of 4-14 degrees,
with and without an eye-travel minimum:

  bona fide   the head turns in the twelve real clips, cut as in bench/liveness_challenge_live.py
              (first try, and with one retry on the same turn with a second nonce)
  attacks     48 photos answering the prompt as in bench/liveness_challenge_attacks.py: bent around a
              vertical cylinder (0.3 / 0.5 / 0.8 widths) or flat, 12 each, seed 15

Only the challenge rule is applied (no moire/glare/bezel/PAD), so the numbers isolate it.
Run: .venv/bin/python bench/liveness_challenge_sweep.py  (writes bench/results/liveness_challenge_sweep.json)
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import live_turn_windows, photos_answering_prompt, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.liveness.temporal import Challenge, challenge_answered, eye_travel, implied_nose_depth, yaw_series
from edge.vision.types import Face

Rule = Callable[[Challenge, list[float], list[Face]], bool]


def from_prompt_pose(min_turn_deg: float, max_sway_deg: float = 12.0, min_depth: float = 0.3) -> Rule:
    """The relaxed rule that was tried: the turn is measured from the pose when the prompt appeared."""
    def rule(challenge: Challenge, times: list[float], faces: list[Face]) -> bool:
        t = np.array(times) - times[0]
        raw = yaw_series(faces)
        padded = np.concatenate([raw[:1], raw, raw[-1:]])
        yaw = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0) * challenge.yaw_sign
        before = np.flatnonzero(t < challenge.prompt_at_s)
        after = np.flatnonzero((t >= challenge.prompt_at_s) & (t <= challenge.prompt_at_s + challenge.window_s))
        if before.size < 2 or after.size == 0 or np.ptp(yaw[before]) >= max_sway_deg:
            return False
        if (yaw[after] - np.median(yaw[before[-4:]])).max() < min_turn_deg:
            return False
        return implied_nose_depth(faces, yaw_series(faces), min_turn_deg / 2) >= min_depth
    return rule


def shipped(challenge: Challenge, times: list[float], faces: list[Face]) -> bool:
    return challenge_answered(challenge, times, faces)[0]


def with_coupling(rule: Rule, min_coupling: float) -> Rule:
    def coupled(challenge: Challenge, times: list[float], faces: list[Face]) -> bool:
        return rule(challenge, times, faces) and eye_travel(challenge, times, faces) >= min_coupling
    return coupled


def main() -> None:
    stage = build_face_stage(load_config())
    detector = stage.detector
    rng = np.random.default_rng(15)
    bona_fide = list(live_turn_windows(detector, rng, 2))  # per turn: (first try, retry) windows
    artefacts = list(photos_answering_prompt(detector, np.random.default_rng(15), 48))
    rules: dict[str, Rule] = {"shipped (>= 4 deg from the prompt pose, eyes travel >= 0.5)": shipped}
    rules |= {f"from the prompt pose, >= {d} deg": from_prompt_pose(d) for d in (4, 6, 8, 10, 12, 14)}
    rules |= {f"from the prompt pose, >= {d} deg, eyes travel >= {c}": with_coupling(from_prompt_pose(d), c)
              for d in (4, 6, 8) for c in (0.3, 0.5, 0.7)}
    report = {}
    for name, rule in rules.items():
        first = [rule(*tries[0]) for tries in bona_fide]
        retried = [rule(*tries[0]) or (len(tries) > 1 and rule(*tries[1])) for tries in bona_fide]
        accepted: collections.Counter = collections.Counter()
        totals: collections.Counter = collections.Counter()
        for kind, challenge, times, faces in artefacts:
            totals[kind] += 1
            accepted[kind] += bool(faces) and len(faces) >= 4 and rule(challenge, times, faces)
        report[name] = {"bona_fide": len(first), "bpcer_first_try": 1 - float(np.mean(first)),
                        "bpcer_with_retry": 1 - float(np.mean(retried)),
                        "attacks_accepted": {k: f"{accepted[k]}/{totals[k]}" for k in sorted(totals)}}
        print(name, report[name], flush=True)
    print(save("liveness_challenge_sweep", {"report": report}))


if __name__ == "__main__":
    main()
