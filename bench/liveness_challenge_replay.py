"""Screen replays of real head turns answering the challenge (issue 15): APCER, with and without PAD.

The attacker holds a phone or tablet that plays a recording of the card holder turning their head, and
starts it so the turn follows the prompt in the asked direction by a natural reaction (0.3-0.7 s): the
strongest replay there is against a head-turn challenge, because the motion in it is a real head's. The
recordings are the turns in the twelve real clips (shared/data/video/live), cut exactly as the bona fide
presentations of bench/liveness_challenge_live.py, then shown on a simulated screen and recaptured
(edge.liveness.attacks.replay_attack: subpixel grid, gamma, banding, bezel, glare, hand motion, noise).
Only the deny cues (moire, glare, bezel) and, when provisioned, the PAD model can stop it.

Run: .venv/bin/python bench/liveness_challenge_replay.py  (writes bench/results/liveness_challenge_replay.json)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import live_clips, save
from liveness_challenge_attacks import challenge_checkers

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.liveness import attacks
from edge.liveness.evaluation import upper_bound_95
from edge.liveness.presentations import turn_cuts


def main() -> None:
    stage = build_face_stage(load_config())
    checkers = challenge_checkers(stage.detector)
    rng = np.random.default_rng(15)
    tallies = {name: collections.Counter() for name in checkers}
    for clip, frames in live_clips():
        detections, _ = checkers["without_pad"].detect_all(frames)
        for cut, window in turn_cuts(frames, detections, rng):
            challenge = cut.challenge
            shown = attacks.replay_attack(window, rng)
            replay_detections, images = checkers["without_pad"].detect_all(shown)
            for name, checker in checkers.items():
                result = checker.decide(replay_detections, images, challenge=challenge)
                tallies[name]["fta" if result.failure_to_acquire else
                              "accepted" if result.live else result.reasons[0]] += 1
            print(clip.name, cut.first, {n: dict(c) for n, c in tallies.items()}, flush=True)
    report = {}
    for name, counts in tallies.items():
        acquired = sum(counts.values()) - counts["fta"]
        report[name] = {"presentations": sum(counts.values()), "acquired": acquired, "accepted": counts["accepted"],
                        "apcer": counts["accepted"] / acquired if acquired else None,
                        "apcer_upper95": upper_bound_95(counts["accepted"], acquired), "outcomes": dict(counts)}
        print(name, report[name], flush=True)
    print(save("liveness_challenge_replay", {"report": report}))


if __name__ == "__main__":
    main()
