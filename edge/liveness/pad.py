"""Optional PAD layer: MiniFASNet anti-spoofing CNNs (ONNX), when an operator provisions them.

Pre-processing follows the original recipe exactly (../shared/models/README.md): a crop of 2.7x (V2) or
4.0x (V1SE) the detector's face box, shifted back inside the image, resized to 80x80, BGR, raw 0..255
float32, NCHW. Post-processing: softmax over 3 logits, class 1 is live; the models' live probabilities
are averaged. Absent models are not an error: the checker says in its output that the layer is off.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge.vision.runtime import InferenceBackend, OnnxBackend
from edge.vision.types import Face

MODEL_FILES = {"2.7_80x80_MiniFASNetV2.onnx": 2.7, "4_0_0_80x80_MiniFASNetV1SE.onnx": 4.0}


def pad_model_dir() -> Path | None:
    env = os.environ.get("EDGE_PAD_MODELS")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[3] / "shared" / "models"]
    for folder in candidates:
        if all((folder / name).is_file() for name in MODEL_FILES):
            return folder
    return None


def pad_crop(frame: np.ndarray, face: Face, scale: float, size: int = 80) -> np.ndarray:
    """The original recipe's crop: box scaled about its centre, clipped to the frame by shifting."""
    h, w = frame.shape[:2]
    x, y, bw, bh = face.box
    scale = min((h - 1) / bh, (w - 1) / bw, scale)
    nw, nh = bw * scale, bh * scale
    cx, cy = x + bw / 2, y + bh / 2
    left, top = cx - nw / 2, cy - nh / 2
    right, bottom = cx + nw / 2, cy + nh / 2
    if left < 0:
        right -= left
        left = 0
    if top < 0:
        bottom -= top
        top = 0
    if right > w - 1:
        left -= right - w + 1
        right = w - 1
    if bottom > h - 1:
        top -= bottom - h + 1
        bottom = h - 1
    crop = frame[int(top):int(bottom) + 1, int(left):int(right) + 1]
    return cv2.resize(crop, (size, size))


class PADModel:
    def __init__(self, backends: list[tuple[InferenceBackend, float]]) -> None:
        self.backends = backends

    @classmethod
    def from_dir(cls, folder: Path, threads: int = 1) -> PADModel:
        return cls([(OnnxBackend(folder / name, threads=threads), scale) for name, scale in MODEL_FILES.items()])

    def live_probability(self, frame: np.ndarray, face: Face) -> float:
        probabilities = []
        for backend, scale in self.backends:
            crop = pad_crop(frame, face, scale).astype(np.float32)
            logits = backend.run(crop.transpose(2, 0, 1)[None])[0].reshape(-1)
            exp = np.exp(logits - logits.max())
            probabilities.append(float(exp[1] / exp.sum()))
        return float(np.mean(probabilities))
