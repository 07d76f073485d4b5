"""What to tell a person whose card is in view but does not scan.

Complaints about verifier apps are mostly about codes that will not scan on phone screens (dark mode, low
brightness, low-contrast designs) and about beeps with no explanation. When a session ends without a card,
this looks for a QR symbol's finder patterns (OpenCV's detector: it finds codes it cannot decode) and
measures the symbol's region: too dark, too little contrast, too small, blurred, or glare. The first problem
found becomes a prompt in the RETRY reply, in words a person can act on.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BRIGHTEN = "Turn up your screen brightness"
CONTRAST = "Turn up your screen brightness, or switch the card to its plain black-on-white view"
CLOSER = "Hold the phone closer to the camera"
STILL = "Hold the phone still for a moment"
GLARE = "Tilt the phone a little to get rid of the reflection"
SHOW_CARD = "Please show the card's QR code to the camera"
NOT_A_CARD = "That QR code is not a card of this hospital: please show your card's QR code"


class CardAdvisor:
    """``advise(grey)``: a prompt when a QR symbol is visible but unreadable, else None (no symbol seen)."""

    def __init__(self, *, min_side_px: float = 90.0, min_mean: float = 70.0, min_spread: float = 70.0,
                 min_sharpness: float = 60.0, max_glare: float = 0.15) -> None:
        self._detector = cv2.QRCodeDetector()
        self.min_side_px = min_side_px
        self.min_mean = min_mean
        self.min_spread = min_spread
        self.min_sharpness = min_sharpness
        self.max_glare = max_glare

    def locate(self, grey: np.ndarray) -> np.ndarray | None:
        """The four corners of a QR symbol's region (pixels), found by its finder patterns, or None. Tried on
        the frame as it is, with its histogram stretched (a dim screen), sharpened (a shaking hand) and
        enlarged (a code far away)."""
        stretched = cv2.equalizeHist(grey)
        sharpened = cv2.addWeighted(stretched, 2.0, cv2.GaussianBlur(stretched, (0, 0), 3.0), -1.0, 0)
        for image, scale in ((grey, 1.0), (stretched, 1.0), (sharpened, 1.0),
                             (cv2.resize(stretched, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC), 2.0)):
            try:
                found, points = self._detector.detect(image)
            except cv2.error:
                continue
            if found and points is not None:
                return np.asarray(points, dtype=np.float32).reshape(-1, 2)[:4] / scale
        return None

    def advise(self, grey: np.ndarray, read: Sequence[Sequence[tuple[float, float]]] = ()) -> str | None:
        """``read``: the corners (pixels) of codes decoded in this frame that were not the card (a poster on
        the wall). A symbol found where one of them lies is that code, readable: no advice from this frame.
        (Covering them before looking was tried: the detector then reads the covered patch's edges as a
        frame-sized symbol.)"""
        corners = self.locate(grey)
        if corners is None or any(_overlaps(corners, np.asarray(quad, dtype=np.float32).reshape(-1, 2))
                                  for quad in read):
            return None
        side = float(np.mean([np.linalg.norm(corners[i] - corners[(i + 1) % 4]) for i in range(4)]))
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        region = grey[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
        if region.size < 64:
            return CLOSER
        p5, p95 = np.percentile(region, (5, 95))
        # Glare is a saturated patch larger than the modules: saturated after averaging over several modules.
        smooth = cv2.GaussianBlur(region, (0, 0), max(2.0, side / 25.0))
        if float(np.mean(smooth >= 240)) > self.max_glare:
            return GLARE
        if float(np.mean(region)) < self.min_mean and p95 < 140:
            return BRIGHTEN
        if p95 - p5 < self.min_spread:
            return CONTRAST
        if side < self.min_side_px:
            return CLOSER
        if float(cv2.Laplacian(region, cv2.CV_64F).var()) < self.min_sharpness:
            return STILL
        return None


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether either quad holds the other's centre."""
    return cv2.pointPolygonTest(a.reshape(-1, 1, 2), tuple(map(float, b.mean(axis=0))), False) >= 0 or \
        cv2.pointPolygonTest(b.reshape(-1, 1, 2), tuple(map(float, a.mean(axis=0))), False) >= 0
