"""How much of SFace's score spread is alignment noise from the detector's landmarks? (docs/THRESHOLDS.md)

The 20 shared portraits are detected at several detector input sizes; the five landmarks' movement between
sizes is reported in eye distances, and the 190 pairs (21 genuine, 169 impostor) are scored with the shipped
single 640 px pass, with embeddings averaged over several sizes (both sides, or the enrolment side only),
and with landmarks averaged over sizes before one alignment. Nothing here is shipped; it measures a candidate.

    .venv/bin/python bench/face_scales.py          (results/face_scales.json)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.imageio import decode_image, read_image_bytes
from edge.vision.align import align_face
from edge.vision.face_stage import FaceStage, choose_face

SIZES = (512, 576, 640, 704)
COMBOS = ((704, 640, 576), (640, 576, 512), (704, 640, 576, 512))


def summary(template: np.ndarray, probe: np.ndarray, who: list[str]) -> dict[str, float]:
    """Lowest and mean genuine, highest and 99th-percentile impostor cosine over all ordered pairs."""
    t = template / np.linalg.norm(template, axis=1, keepdims=True)
    p = probe / np.linalg.norm(probe, axis=1, keepdims=True)
    genuine, impostor = [], []
    for i, j in itertools.permutations(range(len(who)), 2):
        (genuine if who[i] == who[j] else impostor).append(float(t[i] @ p[j]))
    g, m = np.array(genuine), np.array(impostor)
    return {"genuine_min": round(float(g.min()), 3), "genuine_mean": round(float(g.mean()), 3),
            "impostor_max": round(float(m.max()), 3), "impostor_p99": round(float(np.percentile(m, 99)), 3),
            "gap": round(float(g.min() - m.max()), 3)}


def main() -> None:
    files = sorted((DATA / "faces" / "people").glob("*/*"))
    who = [f.parent.name for f in files]
    images = [decode_image(read_image_bytes(str(f)), str(f)) for f in files]
    stage = FaceStage.from_models(None)
    landmarks = {}
    for size in SIZES:
        stage.detector.max_side = size
        landmarks[size] = [choose_face(stage.detector.detect(image)).landmarks for image in images]

    def embed(points: list[np.ndarray]) -> np.ndarray:
        return np.stack([stage.embedder.embed(align_face(image, lm)) for image, lm in zip(images, points, strict=True)])

    vectors = {size: embed(landmarks[size]) for size in SIZES}
    moves = [max(float(np.linalg.norm(landmarks[s][i] - landmarks[640][i], axis=1).max()) for s in (576, 704))
             / float(np.linalg.norm(landmarks[640][i][1] - landmarks[640][i][0])) for i in range(len(images))]
    result: dict[str, object] = {
        "landmark_move_eye_distances": {"median": round(float(np.median(moves)), 3),
                                        "max": round(float(np.max(moves)), 3)},
        "shipped_640": summary(vectors[640], vectors[640], who)}
    for combo in COMBOS:
        averaged = sum(vectors[s] for s in combo)
        points = [np.mean([landmarks[s][i] for s in combo], axis=0) for i in range(len(images))]
        name = "+".join(map(str, combo))
        result[f"embeddings_{name}"] = summary(averaged, averaged, who)
        result[f"embeddings_{name}_enrolment_only"] = summary(averaged, vectors[640], who)
        result[f"landmarks_{name}"] = summary(embed(points), embed(points), who)
    for key, value in result.items():
        print(key, value)
    print(save("face_scales", result))


if __name__ == "__main__":
    main()
