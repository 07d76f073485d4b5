"""Bent-photo attacks (issue 15) against today's checker, passive mode, with and without the PAD models.

Each presentation: one shared portrait trimmed to the head, printed, curved around a vertical cylinder
(radius 0.3, 0.5 or 0.8 photo widths) and turned slowly about the vertical (15-30 degrees peak), 45 frames
at 30 fps, 640x480 (edge.liveness.attacks.bent_photo_attack). Beside it, as the peer in the same run:
flat prints and waved flat photos from the same portraits and random generator.

Reports per attack type: presentations, failure-to-acquire, accepted (APCER) with its 95 % upper bound,
and which reasons the accepted ones carried.
Run: .venv/bin/python bench/liveness_bent.py [--per-type N]  (writes bench/results/liveness_bent.json)
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
from edge.liveness.checker import LivenessThresholds, with_and_without_pad
from edge.liveness.evaluation import upper_bound_95
from edge.liveness.pad import pad_model_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-type", type=int, default=60)
    args = parser.parse_args()
    photos = [load_image(p) for p in sorted((DATA / "faces" / "people").glob("*/*.jp*g"))]
    stage = build_face_stage(load_config())
    checkers = with_and_without_pad(stage.detector, LivenessThresholds(), pad_model_dir())
    heads = attacks.trimmed_heads(photos, stage.detector)
    rng = np.random.default_rng(15)
    makers = {
        "attack_bent_photo": lambda i: attacks.bent_photo_attack(heads[i % len(heads)], rng,
                                                                 radius_widths=(0.3, 0.5, 0.8)[i % 3]),
        "attack_print": lambda i: attacks.print_attack(photos[i % len(photos)], rng),
        "attack_waved_photo": lambda i: attacks.waved_photo_attack(photos[i % len(photos)], rng),
    }
    tallies: dict = {name: {kind: {"n": 0, "fta": 0, "accepted": 0, "reasons": collections.Counter()}
                            for kind in makers} for name in checkers}
    for kind, make in makers.items():
        for i in range(args.per_type):
            presentation = make(i)
            for name, checker in checkers.items():
                result = checker.check(presentation)
                tally = tallies[name][kind]
                tally["n"] += 1
                tally["fta"] += result.failure_to_acquire
                if result.live:
                    tally["accepted"] += 1
                    tally["reasons"].update(result.reasons)
            print(kind, i, {n: tallies[n][kind]["accepted"] for n in checkers}, flush=True)
    report = {}
    for name, kinds in tallies.items():
        report[name] = {}
        for kind, t in kinds.items():
            acquired = t["n"] - t["fta"]
            report[name][kind] = {"presentations": t["n"], "fta": t["fta"], "accepted": t["accepted"],
                                  "apcer": t["accepted"] / acquired if acquired else None,
                                  "apcer_upper95": upper_bound_95(t["accepted"], acquired),
                                  "accepted_reasons": dict(t["reasons"])}
    print(save("liveness_bent", {"per_type": args.per_type, "report": report}))
    for name, kinds in report.items():
        for kind, row in kinds.items():
            print(f"{name:12s} {kind:20s} {row['accepted']}/{row['presentations'] - row['fta']} accepted"
                  f" (fta {row['fta']}) {row['accepted_reasons']}")


if __name__ == "__main__":
    main()
