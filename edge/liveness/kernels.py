"""Numba kernels for the per-frame liveness cues. Plain arrays in, numbers out; no Python objects.

Each kernel has a pure-NumPy twin in ``edge.liveness.reference`` that tests hold it equal to. All use
``cache=True`` (the compiled code is cached next to this file, tied to this CPU and this file's mtime) and
are compiled at daemon start by ``warm_up`` so the first request does not pay for it. No
``parallel=True``: onnxruntime and the camera need the other cores.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lbp_histogram(grey: np.ndarray) -> np.ndarray:
    """Normalised 256-bin histogram of 8-neighbour local binary patterns (interior pixels).

    Targets print and screen texture: halftone dots, paper grain and pixel grids change the micro-texture
    a face's skin has. Cost: one pass over the crop, ~8 compares per pixel.
    """
    h, w = grey.shape
    hist = np.zeros(256, np.float32)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            c = grey[y, x]
            code = 0
            if grey[y - 1, x - 1] >= c:
                code |= 1
            if grey[y - 1, x] >= c:
                code |= 2
            if grey[y - 1, x + 1] >= c:
                code |= 4
            if grey[y, x + 1] >= c:
                code |= 8
            if grey[y + 1, x + 1] >= c:
                code |= 16
            if grey[y + 1, x] >= c:
                code |= 32
            if grey[y + 1, x - 1] >= c:
                code |= 64
            if grey[y, x - 1] >= c:
                code |= 128
            hist[code] += 1.0
    total = hist.sum()
    if total > 0:
        hist /= total
    return hist


@njit(cache=True, nogil=True)
def spectral_peak_ratio(magnitude: np.ndarray, inner: float) -> float:
    """Strongest isolated high-frequency peak over the median of the high-frequency band.

    ``magnitude`` is a centred (fftshift) amplitude spectrum; the band is radius > ``inner`` * Nyquist.
    Targets screen replays: a display's pixel grid, resampled by the camera, puts sharp periodic peaks
    (moire) far from the centre, where skin has a smooth falloff. Cost: one pass over the spectrum.
    """
    h, w = magnitude.shape
    cy, cx = h // 2, w // 2
    r_inner = inner * min(cy, cx)
    r_outer = min(cy, cx)
    values = np.empty(h * w, np.float64)
    n = 0
    best = 0.0
    for y in range(h):
        for x in range(w):
            dy = y - cy
            dx = x - cx
            r = (dy * dy + dx * dx) ** 0.5
            if r > r_inner and r < r_outer:
                v = magnitude[y, x]
                values[n] = v
                n += 1
                if v > best:
                    best = v
    if n == 0:
        return 0.0
    median = np.median(values[:n])
    if median <= 0:
        return 0.0
    return best / median


@njit(cache=True, nogil=True)
def glare_block_fraction(grey: np.ndarray, threshold: int, blocks: int) -> float:
    """Largest fraction of near-saturated pixels (>= threshold) in any of blocks x blocks tiles.

    Targets a phone screen or glossy print: a mirror-like surface throws one large saturated blob over
    the face, where skin highlights stay small and scattered. Cost: one pass over the crop.
    """
    h, w = grey.shape
    counts = np.zeros((blocks, blocks), np.float64)
    sizes = np.zeros((blocks, blocks), np.float64)
    for y in range(h):
        by = min(y * blocks // h, blocks - 1)
        for x in range(w):
            bx = min(x * blocks // w, blocks - 1)
            sizes[by, bx] += 1.0
            if grey[y, x] >= threshold:
                counts[by, bx] += 1.0
    best = 0.0
    for by in range(blocks):
        for bx in range(blocks):
            if sizes[by, bx] > 0:
                f = counts[by, bx] / sizes[by, bx]
                if f > best:
                    best = f
    return best


@njit(cache=True, nogil=True)
def straight_edge_profile(grey: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the share of rows with a strong horizontal step; per row, the same for vertical steps.

    A screen bezel or a paper edge around the face is a long straight step: one column (or row) where
    most rows have a large gradient. Cost: one pass over the context crop.
    """
    h, w = grey.shape
    cols = np.zeros(w, np.float32)
    rows = np.zeros(h, np.float32)
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            gx = abs(np.int32(grey[y, x + 1]) - np.int32(grey[y, x - 1]))
            gy = abs(np.int32(grey[y + 1, x]) - np.int32(grey[y - 1, x]))
            if gx >= threshold:
                cols[x] += 1.0
            if gy >= threshold:
                rows[y] += 1.0
    if h > 2:
        cols /= h - 2
    if w > 2:
        rows /= w - 2
    return cols, rows


@njit(cache=True, nogil=True)
def colour_stats(bgr: np.ndarray) -> tuple[float, float, float, float]:
    """(sharpness, chroma mean, chroma std, colour diversity) of a BGR crop.

    Image-quality statistics that recaptured images shift: prints lose chroma and colour diversity
    (fewer distinct inks), screens shift gamma and saturation, both lose sharpness. Sharpness is the
    variance of a 4-neighbour Laplacian of the grey image; chroma is the distance of (Cr, Cb) from grey;
    diversity is the share of 4096 quantised colours (16 levels per channel) that occur. Cost: two passes.
    """
    h, w = bgr.shape[0], bgr.shape[1]
    grey = np.empty((h, w), np.float32)
    seen = np.zeros(4096, np.uint8)
    chroma_sum = 0.0
    chroma_sq = 0.0
    for y in range(h):
        for x in range(w):
            b = float(bgr[y, x, 0])
            g = float(bgr[y, x, 1])
            r = float(bgr[y, x, 2])
            lum = 0.299 * r + 0.587 * g + 0.114 * b
            grey[y, x] = lum
            cr = (r - lum) * 0.713
            cb = (b - lum) * 0.564
            c = (cr * cr + cb * cb) ** 0.5
            chroma_sum += c
            chroma_sq += c * c
            seen[(int(bgr[y, x, 0]) >> 4) * 256 + (int(bgr[y, x, 1]) >> 4) * 16 + (int(bgr[y, x, 2]) >> 4)] = 1
    n = float(h * w)
    mean = chroma_sum / n
    std = max(chroma_sq / n - mean * mean, 0.0) ** 0.5
    lap_sum = 0.0
    lap_sq = 0.0
    m = 0
    for y in range(1, h - 1):
        for x in range(1, w - 1):
            v = grey[y - 1, x] + grey[y + 1, x] + grey[y, x - 1] + grey[y, x + 1] - 4.0 * grey[y, x]
            lap_sum += v
            lap_sq += v * v
            m += 1
    sharp = 0.0
    if m > 0:
        lm = lap_sum / m
        sharp = lap_sq / m - lm * lm
    return sharp, mean, std, float(seen.sum()) / 4096.0


def warm_up() -> None:
    """Compile (or load from the cache) every kernel on tiny inputs."""
    grey = np.zeros((8, 8), np.uint8)
    lbp_histogram(grey)
    spectral_peak_ratio(np.ones((8, 8), np.float32), 0.3)
    glare_block_fraction(grey, 250, 2)
    straight_edge_profile(grey, 40)
    colour_stats(np.zeros((8, 8, 3), np.uint8))
