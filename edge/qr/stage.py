"""The QR stage: every decoder on the frame, then preprocessing retries inside a time budget.

Three retries work on a colour frame first. The brightest channel instead of the grey mean: a phone or
tablet screen draws each module with red, green and blue subpixel stripes, which the grey mean turns into
a striped pattern and the maximum fills in again. Each channel divided by its local mean before summing
(``flattened_channels``): the screen's aliased colour fringes and backlight falloff go, which reads more
phone screens and dark-mode cards. The same flattened image thresholded locally (``flattened_threshold``),
for dim screens and pastel designs. Numbers in bench/README.md.
Then, on grey: local contrast (CLAHE) for dim or washed-out codes, 2x upscale for small codes, unsharp
masking for blur, a median blur against screen moiré and sensor noise, inversion (light-on-dark codes;
zxing handles it itself, zbar does not), Otsu binarisation for glare gradients, and a 0.5x downscale for
large codes dominated by moiré. The first variant in which any decoder reads a code ends the search. The
budget bounds the retries, not the first pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np

from edge.imageio import to_bgr8
from edge.qr.decoders import QRDecoder, default_decoders
from edge.qr.types import QRCode

log = logging.getLogger(__name__)

Variant = tuple[str, Callable[[np.ndarray], np.ndarray], float]  # name, transform, scale of output/input


def _clahe(g: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(g)


def _sharpen(g: np.ndarray) -> np.ndarray:
    blurred = cv2.GaussianBlur(g, (0, 0), 2.0)
    return cv2.addWeighted(g, 1.8, blurred, -0.8, 0)


def _otsu(g: np.ndarray) -> np.ndarray:
    local = cv2.GaussianBlur(g, (0, 0), 1.0)
    return cv2.adaptiveThreshold(local, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 51, 5)


def _flat(colour: np.ndarray) -> np.ndarray:
    """Each colour channel over its own local mean, summed (float32).

    A phone screen filmed by the gate camera carries slow colour fringes (its subpixel grid aliased by the
    sensor: moire) and a backlight falloff; both multiply each channel by a different slowly varying
    factor, which the grey mean keeps and a division by the local mean removes. The local mean's Gaussian
    sigma is 4 pixels at 640 px width, scaled with the frame width (8 at 1280 reads more dim screens there
    than 4: 15 against 3 of 30 in bench/qr.py).
    """
    sigma = max(2.0, colour.shape[1] / 160.0)
    flat = np.zeros(colour.shape[:2], np.float32)
    for channel in range(3):
        values = colour[:, :, channel].astype(np.float32)
        flat += values / (cv2.GaussianBlur(values, (0, 0), sigma) + 4.0)
    return flat


def _stretch(values: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    low, high = (float(v) for v in np.percentile(values, [low_pct, high_pct]))
    return np.clip((values - low) * (255.0 / max(high - low, 1e-6)), 0, 255).astype(np.uint8)


def flattened_channels(colour: np.ndarray) -> np.ndarray:
    """``_flat`` stretched to grey uint8, then local contrast (CLAHE): phone screens, moire, dark mode."""
    return _clahe(_stretch(_flat(colour), 0, 100))


def flattened_threshold(colour: np.ndarray) -> np.ndarray:
    """``_flat`` stretched between its 1st and 99th percentiles, then a local threshold: dim screens and
    pastel designs, whose modules differ from the background by a few grey levels once flattened."""
    return _otsu(_stretch(_flat(colour), 1, 99))


def _up2(g: np.ndarray) -> np.ndarray:
    return cv2.resize(g, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)


def _down2(g: np.ndarray) -> np.ndarray:
    return cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)


VARIANTS: list[Variant] = [
    ("clahe", _clahe, 1.0),
    ("upscale2", _up2, 2.0),
    ("sharpen", _sharpen, 1.0),
    ("median", lambda g: cv2.medianBlur(g, 3), 1.0),
    ("invert", cv2.bitwise_not, 1.0),
    ("adaptive_threshold", _otsu, 1.0),
    ("downscale2", _down2, 0.5),
    ("upscale2_sharpen", lambda g: _sharpen(_up2(g)), 2.0),
]

#: Retries on a colour frame (its first three channels), before the grey ones: see the module docstring.
COLOUR_VARIANTS: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
    ("max_channel", lambda colour: colour.max(axis=2)),
    ("flattened_channels", flattened_channels),
    ("flattened_threshold", flattened_threshold),
]

#: Frames above this many pixels are refused (a decoder allocates several copies).
MAX_FRAME_PIXELS = 40_000_000


def to_grey(frame: np.ndarray) -> np.ndarray:
    """Any frame (grey, BGR, BGRA, 16-bit, float) to contiguous grey uint8."""
    frame = np.asarray(frame)
    if frame.ndim == 2 and frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(to_bgr8(frame, "frame"), cv2.COLOR_BGR2GRAY)


class QRStage:
    def __init__(self, decoders: list[QRDecoder] | None = None, *, budget_ms: float = 150.0,
                 variants: list[Variant] | None = None, first_hit: bool = True) -> None:
        """``first_hit``: stop at the first decoder that reads anything (a card is one code); the later
        decoders still run whenever the earlier ones read nothing, so the stage reads at least what any
        one of them reads."""
        self.decoders = decoders if decoders is not None else default_decoders()
        self.first_hit = first_hit
        self.budget_ms = budget_ms
        self.variants = VARIANTS if variants is None else variants

    def _run_all(self, grey: np.ndarray, name: str, scale: float,
                 wanted: Callable[[QRCode], bool] | None = None) -> list[QRCode]:
        """Every decoder on ``grey``, or with ``first_hit`` up to the first that reads a wanted code (any
        code when ``wanted`` is None); the distinct codes read."""
        found: dict[bytes, QRCode] = {}
        for decoder in self.decoders:
            for code in decoder.decode(grey):
                if code.data not in found:
                    corners = tuple((x / scale, y / scale) for x, y in code.corners)
                    found[code.data] = QRCode(code.data, code.text, corners, code.decoder, name)
            if self.first_hit and any(wanted is None or wanted(code) for code in found.values()):
                break
        return list(found.values())

    def decode(self, frame: np.ndarray, wanted: Callable[[QRCode], bool] | None = None) -> list[QRCode]:
        """All distinct QR codes in the frame (by payload). Never raises on an odd frame: returns [].

        The search (decoders, then retries within the budget) ends at the first pass that reads a code
        ``wanted`` accepts (any code when None). A gate wants a card: a poster's or a sticker's code in view
        must not end the search before the card beside it, on a phone screen that needs a retry, is read."""
        try:
            if frame is None or np.asarray(frame).size == 0 or np.asarray(frame).ndim not in (2, 3):
                return []
            if np.asarray(frame).shape[0] * np.asarray(frame).shape[1] > MAX_FRAME_PIXELS:
                log.warning("frame too large for QR decoding", extra={"fields": {"shape": list(frame.shape)}})
                return []
            grey = to_grey(frame)
        except Exception as exc:  # an unusable frame is "no code", with a trace in the log
            log.warning("unusable frame for QR decoding: %s", exc)
            return []
        if min(grey.shape) < 8:
            return []
        start = time.perf_counter()
        found: dict[bytes, QRCode] = {}

        def hit(codes: list[QRCode]) -> bool:
            for code in codes:
                found.setdefault(code.data, code)
            return any(wanted is None or wanted(code) for code in codes)

        if hit(self._run_all(grey, "original", 1.0, wanted)):
            return list(found.values())
        colour = np.asarray(frame)
        # Every retry is (name, transform, its input, output/input scale); a colour frame's come first.
        retries: list[tuple[str, Callable[[np.ndarray], np.ndarray], np.ndarray, float]] = []
        if colour.ndim == 3 and colour.shape[2] >= 3 and colour.dtype == np.uint8 and self.variants:
            retries += [(name, transform, colour[:, :, :3], 1.0) for name, transform in COLOUR_VARIANTS]
        retries += [(name, transform, grey, scale) for name, transform, scale in self.variants]
        for name, transform, source, scale in retries:
            if (time.perf_counter() - start) * 1000.0 > self.budget_ms:
                log.debug("qr retry budget spent before %s", name)
                break
            if scale > 1 and max(grey.shape) * scale > 2600:
                continue  # upscaling a large frame costs more than it can gain
            if hit(self._run_all(np.ascontiguousarray(transform(source)), name, scale, wanted)):
                break
        return list(found.values())
