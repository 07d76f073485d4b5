"""SFace embedder: aligned 112x112 BGR crop -> 128-d L2-normalised float32 vector.

SFace takes raw 0..255 pixels in NCHW. ``channel_order`` is "rgb" (what OpenCV's FaceRecognizerSF feeds,
``swapRB=true``) by default; docs/MODELS.md records the measurement behind it. Horizontal-flip fusion
(embed the crop and its mirror, add, renormalise) costs a second inference; it is off unless configured,
for the reason measured in docs/MODELS.md.
"""

from __future__ import annotations

import numpy as np

from edge.vision.align import ALIGNED_SIZE
from edge.vision.runtime import InferenceBackend

EMBEDDING_DIM = 128


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    """Scale to unit length; a zero vector stays zero (it then matches nothing)."""
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class FaceEmbedder:
    def __init__(self, backend: InferenceBackend, *, channel_order: str = "rgb", flip_fusion: bool = False) -> None:
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', not {channel_order!r}")
        self.backend = backend
        self.channel_order = channel_order
        self.flip_fusion = flip_fusion

    def warm_up(self) -> None:
        self.embed(np.zeros((ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8))

    def _raw(self, crop: np.ndarray) -> np.ndarray:
        pixels = crop[:, :, ::-1] if self.channel_order == "rgb" else crop
        tensor = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], dtype=np.float32)
        return self.backend.run(tensor)[0].reshape(-1)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        """Embed one aligned BGR uint8 crop of 112x112 pixels."""
        if aligned.shape != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected a {ALIGNED_SIZE}x{ALIGNED_SIZE}x3 crop, got {aligned.shape}")
        vector = self._raw(aligned)
        if self.flip_fusion:
            vector = l2_normalise(vector) + l2_normalise(self._raw(aligned[:, ::-1]))
        return l2_normalise(vector)
