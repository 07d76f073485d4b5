"""The second face embedder: dlib's ResNet v1 (edge/modelstore/faceapi.py builds its ONNX graph).

dlib compares faces on a 150x150 "face chip": the face warped by a similarity transform onto dlib's mean
face shape with a padding of 0.25 (``get_face_chip_details(shape, 150, 0.25)``). dlib fits its 68 landmarks;
we have YuNet's five, so the template below holds the same five points of dlib's mean face (eye centres as
the mean of the six eye-contour points, nose tip, mouth corners) in chip pixels. The output is the raw
128-d vector: dlib's vectors are compared by Euclidean distance (same person below about 0.6), not cosine,
and have a norm of about 1.3-1.65.
"""

from __future__ import annotations

import numpy as np

from edge.vision.align import align_face
from edge.vision.runtime import InferenceBackend

CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: dlib's mean face (interpolation.h, points 36-41 and 42-47 averaged, 30, 48, 54), as fractions of the
#: face box: the eye on the image's left, the other eye, nose tip, mouth corners (YuNet's order).
MEAN_FACE = np.array([[0.22549, 0.21599], [0.75476, 0.21599], [0.490127, 0.515625],
                      [0.254149, 0.780233], [0.726104, 0.780233]])
CHIP_TEMPLATE = (CHIP_PADDING + MEAN_FACE) / (2 * CHIP_PADDING + 1) * CHIP_SIZE
EMBEDDING_DIM = 128


class ResNetEmbedder:
    """Face image and 5 landmarks -> dlib ResNet vector (128 float32, not normalised)."""

    def __init__(self, backend: InferenceBackend) -> None:
        self.backend = backend

    def warm_up(self) -> None:
        self.embed_chip(np.zeros((CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8))

    def chip(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 150x150 BGR face chip (the same anti-aliased warp as SFace's crop)."""
        return align_face(image, landmarks, CHIP_SIZE, CHIP_TEMPLATE)

    def embed_chip(self, chip: np.ndarray) -> np.ndarray:
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"expected a {CHIP_SIZE}x{CHIP_SIZE}x3 chip, got {chip.shape}")
        tensor = np.ascontiguousarray(chip[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32)  # RGB
        return self.backend.run(tensor)[0].reshape(-1).astype(np.float32)

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        return self.embed_chip(self.chip(image, landmarks))
