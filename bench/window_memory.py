"""Memory a challenge window holds: the frames the gate keeps against keeping every frame.

A challenge window is the prompt (0.3-1.0 s) plus a 2.5 s answer: up to 105 frames at 30 fps. The gate keeps
every ``edge.gate.window.KEEP_EVERY``-th frame and the ``MATCH_FRAMES`` with the largest face (the rest keep
only their detections); the peer keeps every frame, as the gate did until 2026-12-07. Both run the real
capture (``edge.gate.window.capture_window``, through the pipeline) with the real detector on the same
640x480 live clip, fed as a camera would (a fresh array per frame); tracemalloc's peak (numpy reports its
buffers to it) over the window, median of 5 alternating runs each, and the frames held at its end.

    .venv/bin/python bench/window_memory.py   (writes bench/results/window_memory.json)
"""

from __future__ import annotations

import statistics
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2
from common import DATA, machine, save

import edge.gate.window as window_module
from edge.assembly import build_face_stage
from edge.camera.sources import ReplaySource
from edge.config import load_config
from edge.liveness.temporal import Challenge
from edge.pipeline import SitePolicy, VerificationPipeline

CLIP = DATA / "video" / "live" / "d0.mp4"
RUNS = 5


def window(faces, frames, keep_all: bool) -> tuple[float, int, int]:
    """(peak MB, frames in the window, frames held) for one window."""
    pipeline = VerificationPipeline.__new__(VerificationPipeline)
    pipeline.faces = faces
    pipeline.policy = SitePolicy(site="s", gate_id="g")
    saved = window_module.KEEP_EVERY, window_module.MATCH_FRAMES
    if keep_all:
        window_module.KEEP_EVERY, window_module.MATCH_FRAMES = 1, 10**6
    challenge = Challenge(direction="left", prompt_at_s=1.0)  # the longest window a first challenge has
    try:
        tracemalloc.start()
        camera = ((t, frame.copy()) for t, frame in frames)  # a camera hands over a new array each frame
        detections, images = pipeline._capture_window(camera, lambda: None, challenge, lambda *_: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        window_module.KEEP_EVERY, window_module.MATCH_FRAMES = saved
    return peak / 1e6, len(detections), sum(image is not None for image in images)


def main() -> None:
    faces = build_face_stage(load_config())
    with ReplaySource(CLIP) as source:
        frames = [(t, cv2.resize(frame, (640, 480))) for t, frame in source.frames()][:120]
    results: dict[str, list[tuple[float, int, int]]] = {"kept": [], "every_frame": []}
    for _ in range(RUNS):
        results["kept"].append(window(faces, frames, keep_all=False))
        results["every_frame"].append(window(faces, frames, keep_all=True))
    report = {name: {"peak_mb_median": round(statistics.median(r[0] for r in runs), 1),
                     "window_frames": runs[0][1], "frames_held": runs[0][2]} for name, runs in results.items()}
    print(report)
    print(save("window_memory", {"machine": machine(), "clip": CLIP.name, "runs": RUNS, "report": report}))


if __name__ == "__main__":
    main()
