"""Liveness benchmark: each cue's Numba kernel beside its NumPy reference, the whole decision, cold/warm.

  per cue, on face crops of 112 and 160 px: Numba kernel vs edge.liveness.reference (same inputs, same run)
  decision: LivenessChecker.decide on a 45-frame window of the shared video (detections precomputed),
            and frame_cues alone per frame
  start:    kernels.warm_up() in a fresh process with an empty NUMBA_CACHE_DIR (cold: compiles) and again
            with the cache it left (warm: loads)
Run: .venv/bin/python bench/liveness.py  (writes bench/results/liveness.json)
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save, time_call

from edge.assembly import build_face_stage
from edge.camera.sources import ReplaySource
from edge.config import load_config
from edge.liveness import kernels, reference
from edge.liveness.checker import LivenessChecker
from edge.liveness.cues import face_crop, frame_cues


def cases_for(bgr: np.ndarray) -> dict:
    """(Numba, NumPy) callables per kernel, bound to one crop."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2(grey.astype(np.float32)))).astype(np.float32)
    return {
        "lbp_histogram": (lambda: kernels.lbp_histogram(grey), lambda: reference.lbp_histogram(grey)),
        "spectral_peak_ratio": (lambda: kernels.spectral_peak_ratio(spectrum, 0.35),
                                lambda: reference.spectral_peak_ratio(spectrum, 0.35)),
        "glare_block_fraction": (lambda: kernels.glare_block_fraction(grey, 250, 4),
                                 lambda: reference.glare_block_fraction(grey, 250, 4)),
        "straight_edge_profile": (lambda: kernels.straight_edge_profile(grey, 40),
                                  lambda: reference.straight_edge_profile(grey, 40)),
        "colour_stats": (lambda: kernels.colour_stats(bgr), lambda: reference.colour_stats(bgr)),
    }


def cue_table(crops: dict[int, np.ndarray]) -> dict:
    table = {}
    for size, bgr in crops.items():
        for name, (numba_fn, numpy_fn) in cases_for(bgr).items():
            fast, slow = time_call(numba_fn, repeat=50), time_call(numpy_fn, repeat=50)
            table[f"{name}@{size}"] = {"numba": fast, "numpy": slow,
                                       "speedup": round(slow["median_ms"] / max(fast["median_ms"], 1e-6), 1)}
            print(f"{name:22s} {size}px numba {fast['median_ms']:7.3f} ms  numpy {slow['median_ms']:7.3f} ms",
                  flush=True)
    return table


def start_times() -> dict:
    code = ("import time; t=time.perf_counter(); from edge.liveness import kernels; kernels.warm_up(); "
            "print(time.perf_counter()-t)")
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm", "warm_again"):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            result[label + "_s"] = round(float(out.stdout.strip()), 3)
            print(label, result[label + "_s"], "s", flush=True)
    return result


def main() -> None:
    stage = build_face_stage(load_config())
    stage.warm_up()
    kernels.warm_up()
    with ReplaySource(DATA / "video/short_hamilton_clip.mp4", start_s=3.2, max_frames=45) as source:
        frames = list(source.frames())
    detections = [(t, stage.detector.detect(f)) for t, f in frames]
    face = next(faces[0] for _, faces in detections if faces)
    crops = {size: face_crop(frames[0][1], face, 1.0, size) for size in (112, 160)}
    results: dict = {"cues": cue_table(crops)}
    checker = LivenessChecker(stage.detector)
    images = [f for _, f in frames]
    results["frame_cues_ms"] = time_call(lambda: frame_cues(images[0], face), repeat=30)
    results["decide_45_frames_ms"] = time_call(lambda: checker.decide(detections, images), repeat=10)
    detect = [time_call(lambda f=f: stage.detector.detect(f), repeat=3)["median_ms"] for f in images[:10]]
    results["detect_per_frame_ms"] = round(statistics.median(detect), 2)
    print("frame_cues", results["frame_cues_ms"], "decide", results["decide_45_frames_ms"],
          "detect/frame", results["detect_per_frame_ms"])
    results["start"] = start_times()
    save("liveness", results)


if __name__ == "__main__":
    began = time.time()
    main()
    print(f"done in {time.time() - began:.0f} s")
