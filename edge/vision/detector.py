"""YuNet face detector on an inference backend, with our own pre- and post-processing.

Pre-processing: a large frame is downscaled (INTER_AREA) so its long side is at most ``max_side`` pixels
(YuNet's landmarks, and so the match, degrade badly on multi-megapixel input), then zero-padded at the
bottom-right to a multiple of 32; YuNet takes raw BGR 0..255 in NCHW. When nothing is found in a frame
larger than that, one retry runs at up to ``retry_max_side`` pixels: a small face in a big photo (a
distant snapshot, a scanned document) can shrink below YuNet's ~10 px floor in the first pass.
Post-processing follows OpenCV's ``FaceDetectorYN``: anchor-free decoding on strides 8/16/32,
score = sqrt(cls * obj), greedy NMS, and coordinates mapped back to the original frame.
"""

from __future__ import annotations

import math

import numpy as np

from edge.errors import ModelError
from edge.vision.align import shrink
from edge.vision.runtime import InferenceBackend
from edge.vision.types import Face

STRIDES = (8, 16, 32)
DIVISOR = 32


def padded_size(width: int, height: int) -> tuple[int, int]:
    """Network input size: each side rounded up to a multiple of 32 pixels."""
    return (math.ceil(width / DIVISOR) * DIVISOR, math.ceil(height / DIVISOR) * DIVISOR)


def decode(outputs: list[np.ndarray], width: int, height: int, score_threshold: float) -> np.ndarray:
    """Decode YuNet's 12 outputs (cls, obj, bbox, kps for each stride) into rows of
    [x, y, w, h, 10 landmark coordinates, score] in network-input pixels, score >= threshold.
    """
    n = len(STRIDES)
    rows = []
    for i, stride in enumerate(STRIDES):
        cols, lines = width // stride, height // stride
        cls = np.clip(outputs[i].reshape(-1), 0.0, 1.0)
        obj = np.clip(outputs[i + n].reshape(-1), 0.0, 1.0)
        score = np.sqrt(cls * obj)
        keep = np.nonzero(score >= score_threshold)[0]
        if keep.size == 0:
            continue
        bbox = outputs[i + 2 * n].reshape(-1, 4)[keep]
        kps = outputs[i + 3 * n].reshape(-1, 10)[keep]
        if cols * lines != cls.size:
            raise ModelError(f"detector output of {cls.size} anchors does not fit a {cols}x{lines} grid at stride "
                             f"{stride}: not the expected YuNet model", code="model_runtime")
        c = (keep % cols).astype(np.float32)
        r = (keep // cols).astype(np.float32)
        cx = (c + bbox[:, 0]) * stride
        cy = (r + bbox[:, 1]) * stride
        w = np.exp(bbox[:, 2]) * stride
        h = np.exp(bbox[:, 3]) * stride
        lm = np.empty_like(kps)
        lm[:, 0::2] = (kps[:, 0::2] + c[:, None]) * stride
        lm[:, 1::2] = (kps[:, 1::2] + r[:, None]) * stride
        rows.append(np.column_stack([cx - w / 2, cy - h / 2, w, h, lm, score[keep]]))
    if not rows:
        return np.zeros((0, 15), dtype=np.float32)
    return np.concatenate(rows).astype(np.float32)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (x, y, w, h) box against an (N, 4) array."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    y2 = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int = 5000) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        if order.size == 1:
            break
        overlap = iou_one_to_many(boxes[best], boxes[order[1:]])
        order = order[1:][overlap <= iou_threshold]
    return kept


class FaceDetector:
    """Finds faces in a BGR frame. ``detect`` returns faces in original-frame pixels, best first."""

    def __init__(self, backend: InferenceBackend, *, max_side: int = 640, score_threshold: float = 0.8,
                 nms_threshold: float = 0.3, top_k: int = 50, retry_max_side: int = 1600,
                 retry_backend: InferenceBackend | None = None) -> None:
        """``retry_backend`` runs the larger retry pass when given (else ``backend`` does): a backend that
        keeps an arena sized by what it ran then stays sized by ``max_side``."""
        self.backend = backend
        self.retry_backend = retry_backend or backend
        self.max_side = max_side
        self.retry_max_side = retry_max_side
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def warm_up(self) -> None:
        self.detect(np.zeros((240, 320, 3), dtype=np.uint8))

    def prepare(self, image: np.ndarray, max_side: int | None = None) -> tuple[np.ndarray, float]:
        """Return the NCHW float32 network input and the scale from frame to network pixels."""
        height, width = image.shape[:2]
        scale = min(1.0, (max_side or self.max_side) / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = shrink(image, size)
        h, w = image.shape[:2]
        pw, ph = padded_size(w, h)
        tensor = np.zeros((1, 3, ph, pw), dtype=np.float32)
        tensor[0, :, :h, :w] = image.transpose(2, 0, 1)
        return tensor, scale

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self._detect_at(image, self.max_side, self.backend)
        if not faces and max(image.shape[:2]) > self.max_side and self.retry_max_side > self.max_side:
            faces = self._detect_at(image, self.retry_max_side, self.retry_backend)
        return faces

    def _detect_at(self, image: np.ndarray, max_side: int, backend: InferenceBackend) -> list[Face]:
        tensor, scale = self.prepare(image, max_side)
        outputs = backend.run(tensor)
        rows = decode(outputs, tensor.shape[3], tensor.shape[2], self.score_threshold)
        if rows.shape[0] == 0:
            return []
        keep = nms(rows[:, :4], rows[:, 14], self.nms_threshold)[: self.top_k]
        faces = []
        for row in rows[keep]:
            coords = row[:14] / scale
            faces.append(Face(box=(float(coords[0]), float(coords[1]), float(coords[2]), float(coords[3])),
                              landmarks=coords[4:14].reshape(5, 2).astype(np.float32), score=float(row[14])))
        return faces
