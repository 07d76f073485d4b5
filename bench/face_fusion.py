"""SFace alone against SFace fused with dlib's ResNet (``face.model = "sface+dlib"``): score distributions on
every labelled set in shared/data, and what the second model costs (issue 14, part 3).

Sets (each face embedded once by the fused stage; SFace's score is the first 128 values of the same vectors):

- portraits: the 20 photographs of 10 people, 21 genuine and 169 impostor pairs;
- holder at the gate: 45 frames of the demo holder speaking (video/short_hamilton_clip.mp4 at 3.2 s) against
  the holder's portrait (genuine, across sessions and cameras), and against the other 19 portraits (impostor);
- live clips: the twelve clips of video/live (12 people, most of them East Asian, one child), every 10th frame
  up to 20: pairs within a clip (genuine, same session), pairs across clips (impostor, every second frame), and
  every frame against the 20 portraits (impostor).

Cost: the two embedders on the same aligned face, median of 5 rounds of 40 calls each, and the resident memory
the dlib session adds once loaded and run (VmRSS before and after, same process).

    .venv/bin/python bench/face_fusion.py          (results/face_fusion.json)
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.assembly import build_face_stage
from edge.config import config_from_dict
from edge.demo import HOLDER_PORTRAIT, speaker_frames
from edge.imageio import load_image
from edge.vision.align import align_face
from edge.vision.matcher import SFACE, SFACE_DLIB

SCORES = {"sface": lambda a, b: SFACE.similarity(a[:128], b[:128]), "sface+dlib": SFACE_DLIB.similarity}
THRESHOLDS = {"sface": SFACE.threshold, "sface+dlib": SFACE_DLIB.threshold}


STAGE_RSS = """
import sys
from pathlib import Path
from edge.assembly import build_face_stage
from edge.config import config_from_dict
from edge.imageio import load_image
from edge.glibc import release_free_memory
stage = build_face_stage(config_from_dict({"face": {"model": sys.argv[1]}}, "bench"))
stage.warm_up()
stage.embed_image(load_image(sys.argv[2]))
release_free_memory()  # as the daemon does after warm-up and after each session
print(int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024)
"""


def stage_rss_mb(model: str) -> float:
    """Resident memory of a fresh process holding the warmed face stage of ``model`` after one embedding and
    malloc_trim."""
    out = subprocess.run([sys.executable, "-c", STAGE_RSS, model, str(DATA / HOLDER_PORTRAIT)], check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def clip_vectors(stage, path: Path, step: int = 10, limit: int = 20) -> list[np.ndarray]:
    capture, out, index = cv2.VideoCapture(str(path)), [], 0
    while len(out) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            faces = stage.detector.detect(frame)
            if faces:
                face = max(faces, key=lambda f: f.area)
                if face.eye_distance >= 30:
                    out.append(stage.embed_face(frame, face).vector)
        index += 1
    capture.release()
    return out


def describe(genuine: list[float], impostor: list[float], threshold: float) -> dict[str, object]:
    """Distributions, the worst-case gap, d', and the error rates at the model's shipped ``threshold``."""
    g, m = np.array(genuine), np.array(impostor)
    pooled = float(np.sqrt((g.var() + m.var()) / 2))

    def stats(v: np.ndarray) -> dict[str, float]:
        return {k: round(float(x), 4) for k, x in zip(("min", "p1", "median", "p99", "max"),
                                                    np.percentile(v, [0, 1, 50, 99, 100]), strict=True)}
    return {"genuine": {"n": int(g.size), **stats(g)}, "impostor": {"n": int(m.size), **stats(m)},
            "gap": round(float(g.min() - m.max()), 4),
            "gap_in_impostor_sd": round(float((g.min() - m.max()) / m.std()), 2),
            "d_prime": round(float((g.mean() - m.mean()) / pooled), 2),
            "at_threshold": {"threshold": threshold, "fnmr": round(float(np.mean(g < threshold)), 4),
                             "fmr": round(float(np.mean(m >= threshold)), 5)}}


def main() -> None:
    stage = build_face_stage(config_from_dict({"face": {"model": "sface+dlib"}}, "bench"), batch=True)
    stage.warm_up()
    portraits = {p: stage.embed_image(load_image(p)).vector for p in sorted((DATA / "faces/people").glob("*/*"))}
    holder_portrait = DATA / HOLDER_PORTRAIT
    holder_frames = []
    for frame in speaker_frames(DATA):
        faces = stage.detector.detect(frame)
        if faces:
            holder_frames.append(stage.embed_face(frame, max(faces, key=lambda f: f.area)).vector)
    clips = {p.name: clip_vectors(stage, p) for p in sorted((DATA / "video/live").glob("*.mp4"))}

    results: dict[str, dict[str, object]] = {}
    for name, score in SCORES.items():
        sets: dict[str, object] = {}
        g, m = [], []
        for a, b in itertools.combinations(sorted(portraits), 2):
            (g if a.parent == b.parent else m).append(score(portraits[a], portraits[b]))
        sets["portraits"] = describe(g, m, THRESHOLDS[name])
        g = [score(v, portraits[holder_portrait]) for v in holder_frames]
        m = [score(v, p) for v in holder_frames for path, p in portraits.items() if path != holder_portrait]
        sets["holder_at_the_gate"] = describe(g, m, THRESHOLDS[name])
        g = [score(a, b) for vectors in clips.values() for a, b in itertools.combinations(vectors, 2)]
        across = [score(a, b) for (_, x), (_, y) in itertools.combinations(clips.items(), 2)
                  for a in x[::2] for b in y[::2]]
        against = [score(v, p) for vectors in clips.values() for v in vectors for p in portraits.values()]
        sets["live_clips"] = describe(g, across + against, THRESHOLDS[name])
        sets["live_clips"]["impostor_across_clips_max"] = round(max(across), 4)
        sets["live_clips"]["impostor_against_portraits_max"] = round(max(against), 4)
        results[name] = sets
        print(name, {k: (v["gap"], v["d_prime"], v["at_threshold"]) for k, v in sets.items()}, flush=True)

    dlib_only = [float(np.linalg.norm(a[128:] - b[128:])) for (_, x), (_, y) in itertools.combinations(clips.items(), 2)
                 for a in x[::2] for b in y[::2]]
    face = stage.detector.detect(load_image(holder_portrait))[0]
    image = load_image(holder_portrait)
    crop = align_face(image, face.landmarks)
    chip = stage.resnet.chip(image, face.landmarks)
    rounds: dict[str, list[float]] = {"sface_ms": [], "dlib_ms": []}
    calls = {"sface_ms": lambda: stage.embedder.embed(crop), "dlib_ms": lambda: stage.resnet.embed_chip(chip)}
    for _ in range(5):  # interleaved, so both see the same machine load
        for key, call in calls.items():
            began = time.perf_counter()
            for _ in range(40):
                call()
            rounds[key].append((time.perf_counter() - began) * 1000 / 40)
    cost: dict[str, float] = {k: round(statistics.median(v), 2) for k, v in rounds.items()}
    for model in ("sface", "sface+dlib"):  # a fresh process each, as a daemon would hold the stage
        runs = [stage_rss_mb(model) for _ in range(3)]
        cost[f"rss_mb_{model}"] = round(statistics.median(runs), 1)
    save("face_fusion", {"date": time.strftime("%Y-%m-%d"), "weights": {"sface": SFACE_DLIB.sface_weight},
                         "thresholds": THRESHOLDS,
                         "sets": results, "cost": cost,
                         "dlib_distance_across_live_clips": {"min": round(min(dlib_only), 3),
                                                             "below_0.6": int(sum(d < 0.6 for d in dlib_only)),
                                                             "pairs": len(dlib_only)}})
    print(cost)


if __name__ == "__main__":
    main()
