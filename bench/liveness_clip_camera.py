"""Does each live clip's camera stand still, as a gate's does? (issue 15: who the challenge refuses)

The challenge's pivot cue (edge/liveness/temporal.py ``eye_travel``) reads how far the eyes travel in the
image as the head turns. A camera that follows the person (hand-held, or a crop that tracks the face) takes
that travel away or adds its own, so a clip filmed that way says little about a person at a fixed gate
camera. For every clip this tracks corner features outside the face, hair and body (pyramidal Lucas-Kanade,
median shift per frame, summed) and compares the background's path with the eyes': a fixed camera's
background stays put (spread about 0); one that follows the person moves with the eyes. A plain wall has
no corners to track: ``background_tracked`` (the share of frame pairs measured) says how far to trust it.
Run: .venv/bin/python bench/liveness_clip_camera.py  (writes bench/results/liveness_clip_camera.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import live_clips, save

from edge.assembly import build_face_stage
from edge.config import load_config


def background_mask(shape: tuple[int, int], box: np.ndarray) -> np.ndarray:
    """255 where the frame shows neither the face and hair (0.4 face widths either side, half a face above)
    nor the body below it."""
    x, y, w, h = (float(v) for v in box[:4])
    mask = np.full(shape, 255, np.uint8)
    cv2.rectangle(mask, (int(x - 0.4 * w), int(y - 0.5 * h)), (int(x + 1.4 * w), shape[0]), 0, -1)
    return mask


def clip_paths(detector, frames: list) -> dict:
    """The background's summed shift and the eye midpoint per frame with one face, in eye distances."""
    previous = None
    shift = np.zeros(2)
    rows = []
    measured = 0  # frame pairs whose background had enough corners to track (a plain wall has none)
    for _, image in frames:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        faces = detector.detect(image)
        if len(faces) != 1:
            previous = None
            continue
        mask = background_mask(grey.shape, faces[0].box)
        if previous is not None:
            corners = cv2.goodFeaturesToTrack(previous[0], 80, 0.01, 8, mask=previous[1])
            if corners is not None and len(corners) >= 8:
                moved, found, _ = cv2.calcOpticalFlowPyrLK(previous[0], grey, corners, None)
                steps = (moved - corners)[found[:, 0] == 1].reshape(-1, 2)
                if len(steps) >= 5:
                    shift += np.median(steps, axis=0)
                    measured += 1
        landmarks = faces[0].landmarks
        rows.append((*landmarks[:2].mean(axis=0), *shift, float(np.linalg.norm(landmarks[1] - landmarks[0]))))
        previous = (grey, mask)
    table = np.array(rows)
    eye_distance = float(table[:, 4].mean())
    eyes, background = table[:, 0:2] / eye_distance, table[:, 2:4] / eye_distance
    moving = background[:, 0].std() > 1e-6
    return {"frames_with_one_face": len(rows), "eye_distance_px": round(eye_distance, 1),
            "background_tracked": round(measured / max(1, len(rows) - 1), 2),
            "background_spread_ed": [round(float(v), 3) for v in background.std(axis=0)],
            "eyes_spread_ed": [round(float(v), 3) for v in eyes.std(axis=0)],
            "background_follows_eyes_x": round(float(np.corrcoef(background[:, 0], eyes[:, 0])[0, 1]), 2)
            if moving else None}


def main() -> None:
    detector = build_face_stage(load_config()).detector
    clips = {clip.name: clip_paths(detector, frames) for clip, frames in live_clips()}
    for name, row in clips.items():
        print(name, row)
    print("wrote", save("liveness_clip_camera", {"clips": clips}))


if __name__ == "__main__":
    main()
