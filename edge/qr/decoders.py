"""QR decoders behind one protocol: zxing-cpp and zbar (pyzbar).

Both take a contiguous grey uint8 image and return every QR code they read. Library errors are caught
here and logged: a decoder that fails on an odd frame returns nothing, it never raises into the stage.

Text: zxing-cpp decodes each segment by its mode and ECI (byte mode in UTF-8, ISO-8859-1 or Shift_JIS, Kanji
mode, ECI-declared charsets), so its ``text`` is the text as encoded and its ``bytes`` the raw payload. zbar
hands back text it already converted to UTF-8 by its own charset guess (it reads UTF-8 without an ECI as
Shift_JIS), so a code only zbar could read carries zbar's text and those UTF-8 bytes.
pyzbar needs the system library libzbar0; its absence is a typed ``QRError`` that says how to install it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from edge.errors import QRError
from edge.qr.types import QRCode

log = logging.getLogger(__name__)


class QRDecoder(Protocol):
    name: str

    def decode(self, grey: np.ndarray) -> list[QRCode]:
        """Every QR code readable in a grey uint8 image; corners in that image's pixels."""
        ...


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _four_corners(points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    if len(points) == 4:
        return tuple((float(x), float(y)) for x, y in points)
    box = cv2.boxPoints(cv2.minAreaRect(np.array(points, dtype=np.float32)))
    return tuple((float(x), float(y)) for x, y in box)


class ZXingDecoder:
    """zxing-cpp: reads rotated, inverted and downscaled symbols by itself; strongest single decoder."""

    name = "zxing"

    def __init__(self) -> None:
        import zxingcpp

        self._zx = zxingcpp

    def decode(self, grey: np.ndarray) -> list[QRCode]:
        try:
            qr_only = self._zx.BarcodeFormats(self._zx.BarcodeFormat.QRCode)
            found = self._zx.read_barcodes(grey, formats=qr_only, try_rotate=True,
                                           try_downscale=True, try_invert=True)
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError
            log.debug("zxing failed: %s", exc)
            return []
        codes = []
        for barcode in found:
            if not barcode.valid:
                continue
            p = barcode.position
            corners = [(p.top_left.x, p.top_left.y), (p.top_right.x, p.top_right.y),
                       (p.bottom_right.x, p.bottom_right.y), (p.bottom_left.x, p.bottom_left.y)]
            codes.append(QRCode(data=bytes(barcode.bytes), text=barcode.text, corners=_four_corners(corners),
                                decoder=self.name))
        return codes


class ZBarDecoder:
    """zbar via pyzbar: a different binariser and finder, so it reads some frames zxing misses."""

    name = "zbar"

    def __init__(self) -> None:
        try:
            from pyzbar import pyzbar
        except (ImportError, OSError) as exc:  # ImportError when libzbar0 is missing
            raise QRError("pyzbar cannot load the zbar library: install it with `apt-get install libzbar0` "
                          "(scripts/setup.sh does this)", code="qr_decoder_unavailable") from exc
        self._zbar = pyzbar

    def decode(self, grey: np.ndarray) -> list[QRCode]:
        try:
            found = self._zbar.decode(grey, symbols=[self._zbar.ZBarSymbol.QRCODE])
        except Exception as exc:
            log.debug("zbar failed: %s", exc)
            return []
        codes = []
        for symbol in found:
            corners = _four_corners([(pt.x, pt.y) for pt in symbol.polygon])
            codes.append(QRCode(data=bytes(symbol.data), text=_text(symbol.data), corners=corners,
                                decoder=self.name))
        return codes


class OpenCVDecoder:
    """OpenCV's QRCodeDetector: used only as a measured peer in bench/qr.py, not in the stage."""

    name = "opencv"

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetector()

    def decode(self, grey: np.ndarray) -> list[QRCode]:
        try:
            ok, texts, points, _ = self._detector.detectAndDecodeMulti(grey)
        except cv2.error:
            return []
        if not ok or points is None:
            return []
        codes = []
        for text, pts in zip(texts, points, strict=False):
            if text:
                data = text.encode("utf-8")
                codes.append(QRCode(data=data, text=text, corners=_four_corners(pts.tolist()), decoder=self.name))
        return codes


def default_decoders() -> list[QRDecoder]:
    """zxing first (reads most), then zbar; a missing zbar library is an error, not a silent downgrade."""
    return [ZXingDecoder(), ZBarDecoder()]
