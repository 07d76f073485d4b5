"""A tried and rejected structure probe for issue 15 item 1: 468 face-mesh points instead of five.

Question: with dense, stable points (MediaPipe's face_landmark.tflite, 468 points, Apache-2.0, shipped
inside the `mediapipe` wheel on PyPI and run here by OpenCV's own TFLite importer, no new runtime), does
the parallax of a head turn show the 3-D structure that a sheet bent around one axis lacks?

For each challenge presentation the mesh is taken at the steady pose before the prompt and at the peak of
the answer (median of 3-5 frames each); a homography fitted to the interior points (not the silhouette,
lips, eyes or brows, which move on their own) removes every planar motion, and what is left, along the
eye line and in eye distances, is parallax. Physics says, for a sheet bent around a vertical axis, the
nose tip and the bridge of the nose (same column of the sheet) move alike, so tip-minus-bridge ~ 0,
while on a head the tip stands ~2 cm in front of the bridge; for a sheet bent around a horizontal axis,
the tip and the cheeks beside it (same row) move alike.

Material: the head turns of the twelve real clips (cut as in bench/liveness_challenge_live.py, two nonces
per turn) and photos answering the prompt as in bench/liveness_challenge_attacks.py: bent around a
vertical axis (0.3 / 0.5 / 0.8 widths), around a horizontal one (0.4), and flat; seed 15.

The model file is not part of the product and is not fetched by this script (nothing is downloaded at
run time). To run it:

    .venv/bin/pip download --no-deps -d /tmp/mp mediapipe==0.10.21
    unzip -o /tmp/mp/mediapipe-0.10.21-*.whl 'mediapipe/modules/face_landmark/face_landmark.tflite' -d /tmp/mp
    .venv/bin/python bench/liveness_mesh_probe.py /tmp/mp/mediapipe/modules/face_landmark/face_landmark.tflite

(writes bench/results/liveness_mesh_probe.json)
"""

from __future__ import annotations

import collections
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, live_clips, save

from edge.assembly import build_face_stage
from edge.config import load_config
from edge.imageio import load_image
from edge.liveness import attacks
from edge.liveness.presentations import WINDOW_FRAMES, answering_turn, cut_for_turn, turn_onsets
from edge.liveness.temporal import Challenge, yaw_series
from edge.liveness.tracking import follow
from edge.vision.quality import estimate_pose

MESH_INPUT = 192
# Mesh indices (MediaPipe's canonical face mesh) of parts that move by themselves or slide on the head.
OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
        149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 185,
        40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415]
EYES = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246, 263, 249, 390, 373, 374, 380,
        381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
BROWS = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
INTERIOR = np.array(sorted(set(range(468)) - set(OVAL) - set(LIPS) - set(EYES) - set(BROWS)))
TIP, BRIDGE, CHEEKS = 1, 168, (205, 425)
EYE_CORNERS = (33, 263)


class Mesh:
    def __init__(self, path: Path) -> None:
        self.net = cv2.dnn.readNetFromTFLite(str(path))

    def points(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """468 (x, y) in image pixels, from a square crop 1.5x the face box (MediaPipe's recipe)."""
        x, y, w, h = box
        scale = MESH_INPUT / (max(w, h) * 1.5)
        to_crop = np.array([[scale, 0, MESH_INPUT / 2 - (x + w / 2) * scale],
                            [0, scale, MESH_INPUT / 2 - (y + h / 2) * scale]], np.float32)
        crop = cv2.warpAffine(image, to_crop, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR)
        self.net.setInput(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
        out = self.net.forward()[0].reshape(468, 3)[:, :2]
        back = cv2.invertAffineTransform(to_crop)
        return out @ back[:, :2].T + back[:, 2]


def record(frames, detector, mesh: Mesh):
    """(times, 5-point landmarks, mesh points) of the tracked face in a presentation."""
    detections = [(t, detector.detect(image)) for t, image in frames]
    track = follow(detections)
    images = dict(frames)
    return track.times, [f.landmarks for f in track.faces], [mesh.points(images[t], f.box)
                                                             for t, f in zip(track.times, track.faces, strict=True)]


def parallax(nonce: bytes, times, landmarks, meshes) -> dict[str, float] | None:
    """Parallax along the eye line, in eye distances, between the pose before the prompt and the peak."""
    challenge = Challenge.from_nonce(nonce)
    t = np.array(times) - times[0]
    if len(meshes) < 10:
        return None
    yaw = np.array([estimate_pose(lm)[0] for lm in landmarks])
    before = np.flatnonzero((t < challenge.prompt_at_s) & (t >= challenge.prompt_at_s - 0.6))
    after = np.flatnonzero(t >= challenge.prompt_at_s)
    if before.size < 3 or after.size < 5:
        return None
    peak_at = after[np.argmax(np.abs(yaw[after] - np.median(yaw[before])))]
    peak = np.arange(max(peak_at - 2, after[0]), min(peak_at + 3, len(meshes)))
    points = np.array(meshes)
    start, end = np.median(points[before], axis=0), np.median(points[peak], axis=0)
    eye_line = start[EYE_CORNERS[1]] - start[EYE_CORNERS[0]]
    eye_distance = float(np.linalg.norm(eye_line))
    homography, _ = cv2.findHomography(start[INTERIOR], end[INTERIOR], 0)
    predicted = cv2.perspectiveTransform(start[None].astype(np.float64), homography)[0]
    along = ((end - predicted) / eye_distance) @ (eye_line / eye_distance)
    sign = np.sign(along[TIP]) or 1.0
    cheeks = (along[CHEEKS[0]] + along[CHEEKS[1]]) / 2
    return {"turn_deg": round(float(abs(yaw[peak_at] - np.median(yaw[before]))), 2),
            "tip": round(float(abs(along[TIP])), 4),
            "tip_minus_bridge": round(float((along[TIP] - along[BRIDGE]) * sign), 4),
            "tip_minus_cheeks": round(float((along[TIP] - cheeks) * sign), 4)}


def spread(values: list[float]) -> dict[str, float]:
    v = np.array(values)
    return {"n": int(v.size), "p10": round(float(np.percentile(v, 10)), 4),
            "median": round(float(np.median(v)), 4), "p90": round(float(np.percentile(v, 90)), 4)}


def main(model: Path) -> None:
    mesh = Mesh(model)
    detector = build_face_stage(load_config()).detector
    rows: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
    rng = np.random.default_rng(15)
    for clip, frames in live_clips():
        track = follow([(t, detector.detect(f)) for t, f in frames])
        if len(track.faces) < 30:
            continue
        for onset, sign in turn_onsets(track.times, yaw_series(track.faces)):
            for _ in range(2):
                cut = cut_for_turn(len(frames), onset, sign, rng)
                if cut is None:
                    continue
                t0 = frames[cut.first][0]
                window = [(t - t0, f) for t, f in frames[cut.first:cut.first + WINDOW_FRAMES]]
                if (row := parallax(cut.nonce, *record(window, detector, mesh))) is not None:
                    rows["live"].append(row)
        print(clip.name, len(rows["live"]), flush=True)
    heads = attacks.trimmed_heads([load_image(p) for p in sorted((DATA / "faces" / "people").glob("*/*.jp*g"))],
                                  detector)
    attack_rng = np.random.default_rng(15)
    kinds = [("bent 0.3, left-right", 0.3, "vertical"), ("bent 0.5, left-right", 0.5, "vertical"),
             ("bent 0.8, left-right", 0.8, "vertical"), ("flat", 1e4, "vertical"),
             ("bent 0.4, top-bottom", 0.4, "horizontal")]
    for i in range(50):
        name, radius, axis = kinds[i % len(kinds)]
        nonce = attack_rng.bytes(16)
        shown = attacks.bent_photo_attack(heads[i % len(heads)], attack_rng, frames=WINDOW_FRAMES,
                                          radius_widths=radius, axis=axis,
                                          yaw_deg_at=answering_turn(Challenge.from_nonce(nonce), attack_rng))
        if (row := parallax(nonce, *record(shown, detector, mesh))) is not None:
            rows[name].append(row)
        print("attack", i, name, flush=True)
    summary = {kind: {key: spread([r[key] for r in kind_rows]) for key in kind_rows[0]}
               for kind, kind_rows in rows.items()}
    for kind, parts in summary.items():
        print(kind, parts, flush=True)
    print(save("liveness_mesh_probe", {"model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
                                       "summary": summary, "rows": rows}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
