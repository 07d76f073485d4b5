"""What each test of the challenge rule sees (issue 15): the turn, the implied nose depth and the eye travel,
on real people and on photos answering the prompt.

The challenge rule (edge/liveness/temporal.py ``challenge_answered``) asks for a turn of at least 4 degrees
from the pose at the prompt, then two tests of 3-D: the nose's depth implied by its residual from the
eye/mouth plane (``implied_nose_depth``, at least 0.3 eye distances) and the eyes' travel about a neck
(``eye_travel``, at least 0.5). This bench reports, per kind of presentation, the reasons the rule gives and
the percentiles of each measure, so that one can see which test does the work:

  live     the head turns in the twelve real clips, six draws of nonce and reaction time per turn (as in
           bench/liveness_challenge_live.py, seed 15)
  bent 0.3 / bent 0.5 / bent 0.8 / flat
           160 photos answering the prompt (40 a kind, seed 15): bent around a vertical cylinder of that
           radius (photo widths) or flat, turned the asked way by 25-45 degrees after 0.3-0.7 s

Percentiles are p0, p5, p10, p50, p90, p100; ``turned`` is the median of 5 frames around the answer's peak,
in degrees the asked way, from the median pose in the 0.6 s before the prompt.
Run: .venv/bin/python bench/liveness_challenge_cues.py  (writes bench/results/liveness_challenge_cues.json;
about 20 minutes here, most of it rendering the photos)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import live_turn_windows, machine, photos_answering_prompt, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.liveness.temporal import Challenge, challenge_answered, eye_travel, implied_nose_depth, yaw_series
from edge.vision.types import Face

Window = tuple[str, Challenge, list[float], list[Face]]  # (kind, challenge, times, faces)
DRAWS = 6
PHOTOS = 160


def collect() -> list[Window]:
    detector = build_face_stage(load_config()).detector
    rng = np.random.default_rng(15)
    windows: list[Window] = [("live", *draw) for tries in live_turn_windows(detector, rng, DRAWS) for draw in tries]
    windows += photos_answering_prompt(detector, np.random.default_rng(15), PHOTOS)
    return windows


def measures(challenge: Challenge, times: list[float], faces: list[Face]) -> dict | None:
    """The rule's reason and its three measures for one window (None: too few frames to judge)."""
    if len(faces) < 4:
        return None
    _, reason = challenge_answered(challenge, times, faces)
    t = np.array(times) - times[0]
    yaw = yaw_series(faces)
    asked = yaw * challenge.yaw_sign
    before = np.flatnonzero((t < challenge.prompt_at_s) & (t >= challenge.prompt_at_s - 0.6))
    after = np.flatnonzero((t >= challenge.prompt_at_s) & (t <= challenge.prompt_at_s + challenge.window_s))
    if before.size < 2 or after.size == 0:
        return {"reason": reason}
    peak = int(after[np.argmax(asked[after])])
    turned = float(np.median(asked[max(peak - 2, 0):peak + 3]) - np.median(asked[before]))
    return {"reason": reason, "turned": turned, "depth": implied_nose_depth(faces, yaw, 2.0),
            "travel": eye_travel(challenge, times, faces, yaw)}


def percentiles(values: list[float]) -> list[float] | None:
    finite = np.array([v for v in values if np.isfinite(v)])
    return [round(float(v), 3) for v in np.percentile(finite, [0, 5, 10, 50, 90, 100])] if finite.size else None


def summarize(windows: list[Window]) -> dict:
    by_kind: dict[str, list[dict]] = collections.defaultdict(list)
    for kind, challenge, times, faces in windows:
        measured = measures(challenge, times, faces)
        if measured is not None:
            by_kind[kind].append(measured)
    report = {}
    for kind, rows in by_kind.items():
        accepted = [r for r in rows if r["reason"] == "challenge_completed"]
        report[kind] = {"windows": len(rows), "reasons": dict(collections.Counter(r["reason"] for r in rows)),
                        **{key: {"all": percentiles([r[key] for r in rows if key in r]),
                                 "accepted": percentiles([r[key] for r in accepted if key in r])}
                           for key in ("turned", "depth", "travel")}}
    return report


def main() -> None:
    report = summarize(collect())
    for kind, row in report.items():
        print(kind, row, flush=True)
    print(save("liveness_challenge_cues", {"machine": machine(), "report": report}))


if __name__ == "__main__":
    main()
