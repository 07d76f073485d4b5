"""Timing helpers for the benchmarks: median and p90 of repeated runs, results saved as JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(os.environ.get("EDGE_TESTDATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def time_call(fn: Callable[[], object], *, repeat: int = 15, warmup: int = 2) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; milliseconds per call."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    p90 = samples[min(len(samples) - 1, round(0.9 * (len(samples) - 1)))]
    return {"median_ms": round(statistics.median(samples), 3), "p90_ms": round(p90, 3), "runs": repeat}


def machine() -> dict[str, object]:
    return {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.uname().machine}


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def live_clips() -> Iterator[tuple[Path, list[tuple[float, Any]]]]:
    """The real clips of shared/data/video/live in name order, each with all its frames as (seconds, BGR)."""
    from edge.camera.sources import ReplaySource

    for clip in sorted((DATA / "video" / "live").glob("*.mp4")):
        with ReplaySource(clip) as source:
            frames = list(source.frames())
        yield clip, frames


def live_turn_windows(detector: Any, rng: Any, draws: int) -> Iterator[list[tuple[Any, list[float], list[Any]]]]:
    """Bona fide challenge answers cut from the live clips (edge/liveness/presentations.py): for every head
    turn, up to ``draws`` windows, each with a nonce of the turn's direction whose prompt precedes the turn by
    a reaction time, as (challenge, times from the window's start, faces) of the tracked face."""
    from edge.liveness.presentations import WINDOW_FRAMES, cut_for_turn, turn_onsets
    from edge.liveness.temporal import yaw_series
    from edge.liveness.tracking import follow

    for _, frames in live_clips():
        detections = [(t, detector.detect(frame)) for t, frame in frames]
        track = follow(detections)
        if len(track.faces) < 30:
            continue
        for onset, sign in turn_onsets(track.times, yaw_series(track.faces)):
            tries = []
            for _ in range(draws):
                chosen = cut_for_turn(len(detections), onset, sign, rng)
                if chosen is not None:
                    first = chosen.first
                    window = follow([(t - detections[first][0], f) for t, f in detections[first:first + WINDOW_FRAMES]])
                    tries.append((chosen.challenge, window.times, window.faces))
            if tries:
                yield tries


def photos_answering_prompt(detector: Any, rng: Any, count: int) -> Iterator[tuple[str, Any, list[float], list[Any]]]:
    """Prints of the shared portraits answering the challenge's prompt (edge/liveness/attacks.py): in turn bent
    around a vertical cylinder of 0.3, 0.5 and 0.8 photo widths and flat, turned the asked way 0.3-0.7 s after
    the prompt; as (kind, challenge, times, faces) of the tracked face, kind "bent 0.3" ... or "flat"."""
    from edge.imageio import load_image
    from edge.liveness import attacks
    from edge.liveness.presentations import WINDOW_FRAMES, answering_turn
    from edge.liveness.temporal import Challenge
    from edge.liveness.tracking import follow

    heads = attacks.trimmed_heads([load_image(p) for p in sorted((DATA / "faces" / "people").glob("*/*.jp*g"))],
                                  detector)
    for i in range(count):
        challenge = Challenge.from_nonce(rng.bytes(16))
        radius = (0.3, 0.5, 0.8, 1e4)[i % 4]
        shown = attacks.bent_photo_attack(heads[i % len(heads)], rng, frames=WINDOW_FRAMES, radius_widths=radius,
                                          yaw_deg_at=answering_turn(challenge, rng))
        track = follow([(t, detector.detect(frame)) for t, frame in shown])
        print("photo", i, flush=True)
        yield "flat" if radius > 100 else f"bent {radius}", challenge, track.times, track.faces


def unshadow_registry() -> None:
    """Take this folder off ``sys.path``, where a script run from it put it: bench/registry.py would shadow the
    ``registry`` package for any script here that imports it (call before that import)."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
