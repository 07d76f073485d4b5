"""Pure-NumPy references of the Numba kernels (same results; used by tests and bench/liveness.py)."""

from __future__ import annotations

import numpy as np


def lbp_histogram(grey: np.ndarray) -> np.ndarray:
    g = grey.astype(np.int16)
    c = g[1:-1, 1:-1]
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    code = np.zeros_like(c, dtype=np.int32)
    h, w = g.shape
    for bit, (dy, dx) in enumerate(offsets):
        neighbour = g[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx]
        code |= (neighbour >= c).astype(np.int32) << bit
    hist = np.bincount(code.ravel(), minlength=256).astype(np.float32)
    total = hist.sum()
    return hist / total if total > 0 else hist


def spectral_peak_ratio(magnitude: np.ndarray, inner: float) -> float:
    h, w = magnitude.shape
    cy, cx = h // 2, w // 2
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    band = magnitude[(r > inner * min(cy, cx)) & (r < min(cy, cx))].astype(np.float64)
    if band.size == 0:
        return 0.0
    median = float(np.median(band))
    return float(band.max() / median) if median > 0 else 0.0


def glare_block_fraction(grey: np.ndarray, threshold: int, blocks: int) -> float:
    h, w = grey.shape
    by = np.minimum(np.arange(h) * blocks // h, blocks - 1)
    bx = np.minimum(np.arange(w) * blocks // w, blocks - 1)
    index = (by[:, None] * blocks + bx[None, :]).ravel()
    sizes = np.bincount(index, minlength=blocks * blocks)
    counts = np.bincount(index, weights=(grey.ravel() >= threshold).astype(np.float64), minlength=blocks * blocks)
    valid = sizes > 0
    return float((counts[valid] / sizes[valid]).max()) if valid.any() else 0.0


def straight_edge_profile(grey: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    g = grey.astype(np.int32)
    h, w = g.shape
    cols = np.zeros(w, np.float32)
    rows = np.zeros(h, np.float32)
    if h > 2 and w > 2:
        gx = np.abs(g[1:-1, 2:] - g[1:-1, :-2]) >= threshold
        gy = np.abs(g[2:, 1:-1] - g[:-2, 1:-1]) >= threshold
        cols[1:-1] = gx.sum(axis=0) / (h - 2)
        rows[1:-1] = gy.sum(axis=1) / (w - 2)
    return cols, rows


def colour_stats(bgr: np.ndarray) -> tuple[float, float, float, float]:
    f = bgr.astype(np.float64)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    chroma = np.sqrt(((r - lum) * 0.713) ** 2 + ((b - lum) * 0.564) ** 2)
    grey = lum.astype(np.float32).astype(np.float64)
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    q = (bgr[..., 0].astype(np.int32) >> 4) * 256 + (bgr[..., 1].astype(np.int32) >> 4) * 16 + (bgr[..., 2] >> 4)
    diversity = np.unique(q).size / 4096.0
    return float(lap.var()) if lap.size else 0.0, float(chroma.mean()), float(chroma.std()), float(diversity)
