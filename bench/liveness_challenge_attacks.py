"""Photos answering the challenge (issue 15): APCER in challenge mode, with and without the PAD models.

The attacker sees the prompt and reacts as a person holding an artefact would: 0.3-0.7 s after the
prompt, the sheet is turned in the asked direction by 25-45 degrees over 0.4-0.8 s (a sheet shows far
less apparent head yaw than its own turn, so an attacker overdoes it). Two artefacts, 60 each:

  bent_photo_turned   a print trimmed to the head, bent around a vertical cylinder (0.3/0.5/0.8 widths)
  flat_photo_turned   the same print kept flat (radius 1e4 widths), turned the same way

3.5 s at 30 fps, 640x480 (edge.liveness.attacks.bent_photo_attack with yaw_deg_at). The nonce comes from
a seeded generator; detection runs once per presentation and both checkers decide on it.
Run: .venv/bin/python bench/liveness_challenge_attacks.py  (writes bench/results/liveness_challenge_attacks.json)
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.checker import LivenessChecker, LivenessThresholds, with_and_without_pad
from edge.liveness.evaluation import upper_bound_95
from edge.liveness.pad import pad_model_dir
from edge.liveness.presentations import WINDOW_FRAMES, answering_turn
from edge.liveness.temporal import Challenge
from edge.vision.detector import FaceDetector

FRAMES = WINDOW_FRAMES


def challenge_checkers(detector: FaceDetector) -> dict[str, LivenessChecker]:
    """Challenge-mode checkers without the PAD models (the default install) and, when provisioned, with."""
    return with_and_without_pad(detector, LivenessThresholds(require_challenge=True), pad_model_dir())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-type", type=int, default=60)
    args = parser.parse_args()
    stage = build_face_stage(load_config())
    photos = [load_image(p) for p in sorted((DATA / "faces" / "people").glob("*/*.jp*g"))]
    heads = attacks.trimmed_heads(photos, stage.detector)
    checkers = challenge_checkers(stage.detector)
    rng = np.random.default_rng(15)
    kinds = {"bent_photo_turned": lambda i: (0.3, 0.5, 0.8)[i % 3], "flat_photo_turned": lambda i: 1e4}
    tallies = {name: {kind: collections.Counter() for kind in kinds} for name in checkers}
    for kind, radius in kinds.items():
        for i in range(args.per_type):
            challenge = Challenge.from_nonce(rng.bytes(16))
            presentation = attacks.bent_photo_attack(heads[i % len(heads)], rng, frames=FRAMES,
                                                     radius_widths=radius(i),
                                                     yaw_deg_at=answering_turn(challenge, rng))
            detections, images = checkers["without_pad"].detect_all(presentation)
            for name, checker in checkers.items():
                result = checker.decide(detections, images, challenge=challenge)
                outcome = "fta" if result.failure_to_acquire else "accepted" if result.live else result.reasons[0]
                tallies[name][kind][outcome] += 1
            print(kind, i, {n: tallies[n][kind]["accepted"] for n in checkers}, flush=True)
    report: dict = {}
    for name, per_kind in tallies.items():
        report[name] = {}
        for kind, counts in per_kind.items():
            acquired = sum(counts.values()) - counts["fta"]
            report[name][kind] = {"presentations": sum(counts.values()), "acquired": acquired,
                                  "accepted": counts["accepted"],
                                  "apcer": counts["accepted"] / acquired if acquired else None,
                                  "apcer_upper95": upper_bound_95(counts["accepted"], acquired),
                                  "outcomes": dict(counts)}
            print(name, kind, report[name][kind], flush=True)
    print(save("liveness_challenge_attacks", {"per_type": args.per_type, "report": report}))


if __name__ == "__main__":
    main()
