"""Per-frame deny cues on the tracked face, each a number compared with a site threshold.

    moire   spectral_peak_ratio of the face crop's amplitude spectrum     screen replays (pixel grid)
    glare   glare_block_fraction of the face crop                         phone screens, glossy prints
    bezel   opposite-side straight edges in a 2.2x context around the face  screen bezels, paper edges
    texture LBP histogram + colour statistics: reported, never vetoing on their own (no trained
            classifier ships with them; see docs/LIVENESS.md)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.liveness import kernels
from edge.vision.types import Face

CROP = 112


@dataclass(frozen=True, kw_only=True)
class FrameCues:
    moire: float
    glare: float
    bezel: float
    sharpness: float
    chroma: float
    colour_diversity: float
    lbp_uniformity: float
    brightness: float


def face_crop(frame: np.ndarray, face: Face, scale: float = 1.0, size: int = CROP) -> np.ndarray:
    """Square crop of ``scale`` x the face box, centred, shifted inside the frame, resized to ``size``."""
    h, w = frame.shape[:2]
    x, y, bw, bh = face.box
    side = max(bw, bh) * scale
    cx, cy = x + bw / 2, y + bh / 2
    x0 = int(round(min(max(cx - side / 2, 0), max(w - side, 0))))
    y0 = int(round(min(max(cy - side / 2, 0), max(h - side, 0))))
    x1, y1 = min(w, x0 + int(round(side))), min(h, y0 + int(round(side)))
    crop = frame[y0:y1, x0:x1]
    if crop.size == 0:
        return np.zeros((size, size, 3), np.uint8)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


_HANN = np.outer(np.hanning(CROP), np.hanning(CROP)).astype(np.float32)


def moire_score(grey_crop: np.ndarray) -> float:
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2((grey_crop.astype(np.float32) - grey_crop.mean()) * _HANN)))
    return float(kernels.spectral_peak_ratio(spectrum.astype(np.float32), 0.35))


def bezel_score(grey_context: np.ndarray) -> float:
    """Strength of straight edges on two opposite sides outside the face (0..1)."""
    cols, rows = kernels.straight_edge_profile(grey_context, 40)
    n = grey_context.shape[0]
    inner0, inner1 = int(n * 0.28), int(n * 0.72)  # the face itself spans the centre of a 2.2x context
    left, right = cols[2:inner0].max(initial=0), cols[inner1:-2].max(initial=0)
    top, bottom = rows[2:inner0].max(initial=0), rows[inner1:-2].max(initial=0)
    return float(max(min(left, right), min(top, bottom)))


def frame_cues(frame: np.ndarray, face: Face) -> FrameCues:
    crop = face_crop(frame, face, 1.0)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    context = cv2.cvtColor(face_crop(frame, face, 2.2, 160), cv2.COLOR_BGR2GRAY)
    sharp, chroma, _, diversity = kernels.colour_stats(crop)
    lbp = kernels.lbp_histogram(grey)
    uniform = float(lbp[[0, 255]].sum())  # flat regions: high for prints and blurred screens
    return FrameCues(moire=moire_score(grey), glare=float(kernels.glare_block_fraction(grey, 250, 4)),
                     bezel=bezel_score(context), sharpness=float(sharp), chroma=float(chroma),
                     colour_diversity=float(diversity), lbp_uniformity=uniform,
                     brightness=float(grey[16:-16, 16:-16].mean()))
