"""The face stage: frame -> chosen face -> aligned crop -> embedding, composed from its parts.

Choice rule when several faces are found: the largest face box wins (the person at the gate is the one
closest to the camera), ties broken by detector score. The number of faces found is reported with the
result so callers can flag it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from edge.errors import NoFaceError
from edge.imageio import MAX_PIXELS, decode_image, jpeg_reduction, read_image_bytes
from edge.modelstore import resolve_model
from edge.vision.align import align_face
from edge.vision.detector import FaceDetector
from edge.vision.embedder import FaceEmbedder
from edge.vision.matcher import SFACE, SFACE_DLIB, FaceModel
from edge.vision.quality import QualityLimits, assess_quality
from edge.vision.resnet_embedder import ResNetEmbedder
from edge.vision.runtime import LazyBackend, OnnxBackend
from edge.vision.types import Face, FaceEmbedding

log = logging.getLogger(__name__)
#: A face this small (eye distance, pixels) in a reduced decode is re-read at full size: SFace's 112 px
#: template has its eyes 35 px apart, so from 40 px the crop is never upsampled.
MIN_REDUCED_EYES_PX = 40.0


def choose_face(faces: list[Face]) -> Face:
    """The largest face by box area, then the highest score."""
    return max(faces, key=lambda f: (round(f.area, 1), f.score))


class FaceStage:
    """Detects, chooses and embeds faces for one face model: SFace alone, or SFace and dlib's ResNet
    (``resnet``), whose vectors are concatenated into one template (edge/vision/matcher.py)."""

    def __init__(self, detector: FaceDetector, embedder: FaceEmbedder, limits: QualityLimits | None = None,
                 resnet: ResNetEmbedder | None = None) -> None:
        self.detector = detector
        self.embedder = embedder
        self.limits = limits or QualityLimits()
        self.resnet = resnet
        self.model: FaceModel = SFACE_DLIB if resnet is not None else SFACE

    @classmethod
    def from_models(cls, model_dir: Path | None = None, *, threads: int = 2, max_side: int = 640,
                    score_threshold: float = 0.8, flip_fusion: bool = False, channel_order: str = "rgb",
                    limits: QualityLimits | None = None, retry_max_side: int = 1600,
                    memory_arena: bool = False, detector_arena: bool = False, embedder_arena: bool = False,
                    model: FaceModel = SFACE) -> FaceStage:
        """``detector_arena``: the detector's first pass keeps onnxruntime's arena whatever ``memory_arena``
        says, and the rare retry pass at ``retry_max_side`` gets a session of its own (built on its first
        use), so the arena stays sized for ``max_side`` frames. YuNet 4.5 -> 3.2 ms at 640x512 on one thread;
        a gate session 371 -> 294 ms in one process. Memory: up to ~25 MB more at peak in a probe, none
        beyond the spread in `edge match --pairs`, and the daemon stays flat (bench/daemon_memory.py).
        ``embedder_arena``: the embedders too (one input shape, so the arena is sized once): 1.7 % of the
        batch commands' time per image, the same vectors."""
        def backend(name: str, prepack: bool = True, arena: bool = memory_arena,
                    pattern: bool = memory_arena) -> OnnxBackend:
            return OnnxBackend(resolve_model(name, model_dir), threads=threads, memory_arena=arena,
                               memory_pattern=pattern, prepack=prepack)

        first = backend("yunet", arena=memory_arena or detector_arena)
        retry = None
        if detector_arena and not memory_arena:  # built on the first retry: most runs never need one
            retry = LazyBackend(lambda: OnnxBackend(first.path, threads=threads, memory_arena=False))
        detector = FaceDetector(first, max_side=max_side, score_threshold=score_threshold,
                                retry_max_side=retry_max_side, retry_backend=retry)
        embedders = memory_arena or embedder_arena
        embedder = FaceEmbedder(backend("sface", prepack=False, arena=embedders, pattern=embedders),
                                flip_fusion=flip_fusion, channel_order=channel_order)
        resnet = ResNetEmbedder(backend("dlib_resnet", prepack=False, arena=embedders, pattern=embedders)) \
            if model is SFACE_DLIB else None
        return cls(detector, embedder, limits, resnet)

    def warm_up(self) -> None:
        self.detector.warm_up()
        self.embedder.warm_up()
        if self.resnet is not None:
            self.resnet.warm_up()

    def embed_face(self, image: np.ndarray, face: Face, faces_found: int = 1) -> FaceEmbedding:
        aligned = align_face(image, face.landmarks)
        quality = assess_quality(face, aligned, self.limits)
        vector = self.embedder.embed(aligned)
        if self.resnet is not None:
            vector = np.concatenate([vector, self.resnet.embed(image, face.landmarks)])
        return FaceEmbedding(vector=vector, face=face, faces_found=faces_found, quality=quality)

    def embed_photograph(self, data: bytes, source: str = "image", *, max_pixels: int = MAX_PIXELS) -> FaceEmbedding:
        """A photograph's encoded bytes to the chosen face's embedding, decoding no more than it needs: a large
        JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, no full-size image and no
        full-size colour conversion) while its long side stays at least the detector's input; the full size
        is read only when the face found there is small (eyes closer than ``MIN_REDUCED_EYES_PX``). On the
        shared portraits this keeps every decision and the score distributions (lowest genuine 0.565 either
        way, impostor mean 0.131 -> 0.129, p99 0.290 -> 0.294); single pairs move by up to 0.03, as with any
        change of pre-processing, the closest look-alike 0.496 -> 0.504 (OpenCV's own pipeline: 0.500). It is
        5 % of the per-image time on real photographs (docs/THRESHOLDS.md, bench/README.md). The returned
        face's box, landmarks and eye distance are in the pixels of the image that was embedded (the reduced
        one if it was used); only the vector and the number of faces are meant for callers."""
        factor = jpeg_reduction(data, self.detector.max_side)
        if factor > 1:
            try:
                reduced = self.embed_image(decode_image(data, source, max_pixels=max_pixels, reduce=factor))
                if reduced.quality.eye_distance_px >= MIN_REDUCED_EYES_PX:
                    return reduced
            except NoFaceError:
                pass  # a small face the reduced image lost: the full size below decides
        return self.embed_image(decode_image(data, source, max_pixels=max_pixels))

    def embed_file(self, path: str | Path, *, max_pixels: int = MAX_PIXELS) -> FaceEmbedding:
        """A photograph file's chosen face, read as ``embed_photograph`` reads it. `edge match` and
        `edge calibrate` both embed through here, so a threshold calibrated on a site's photographs is the one
        its matches are scored against."""
        return self.embed_photograph(read_image_bytes(path), str(path), max_pixels=max_pixels)

    def embed_image(self, image: np.ndarray) -> FaceEmbedding:
        """Detect, choose, align and embed; raises NoFaceError when no face is found."""
        faces = self.detector.detect(image)
        if not faces:
            raise NoFaceError("no face found in the image")
        return self.embed_face(image, choose_face(faces), len(faces))
