"""Load still images safely: size checked from the header before any pixel is decoded.

Every image leaves here as a contiguous BGR uint8 array (H, W, 3): grey is expanded, alpha is composited
over mid-grey (transparent pixels carry arbitrary colour), 16-bit is scaled to 8-bit, and a JPEG's or
TIFF's EXIF orientation is applied (phones store portraits sideways with a rotate tag; ignoring it hands
the detector a face lying on its side). Anything else is an
:class:`ImageError` with a reason code; nothing here raises a bare OpenCV error.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageError

#: Refuse images above this many pixels before decoding (a 40 MP photo is 120 MB of BGR).
MAX_PIXELS = 40_000_000
#: Refuse files above this many bytes before reading them.
MAX_FILE_BYTES = 64 * 1024 * 1024


def _png_size(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def _bmp_size(head: bytes) -> tuple[int, int] | None:
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(int(w)), abs(int(h))
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP" or len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas size minus one
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless: 14-bit sizes minus one
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        return (int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF)
    return None


def header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height in pixels read from the file header, or None for formats we do not parse."""
    return _png_size(data[:32]) or _bmp_size(data[:32]) or _webp_size(data[:32]) or _jpeg_size(data)


def check_pixels(width: int, height: int, *, limit: int = MAX_PIXELS, source: str = "image") -> None:
    if width <= 0 or height <= 0:
        raise ImageError(f"{source}: header says {width}x{height} pixels", code="image_unreadable")
    if width * height > limit:
        raise ImageError(
            f"{source}: {width}x{height} = {width * height} pixels exceeds the limit of {limit} pixels",
            code="image_too_large", width=width, height=height, limit=limit,
        )


def to_bgr8(image: np.ndarray, source: str = "image") -> np.ndarray:
    """Normalise any decoded array (grey, BGRA, 16-bit, float) to contiguous BGR uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(f"{source}: unsupported pixel type {image.dtype}", code="image_unsupported")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        image = (image[:, :, :3].astype(np.float32) * alpha + 128.0 * (1.0 - alpha)).astype(np.uint8)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ImageError(f"{source}: unsupported array shape {image.shape}", code="image_unsupported")
    return np.ascontiguousarray(image)


REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def jpeg_reduction(data: bytes, min_side: int) -> int:
    """The largest JPEG DCT scaling (2, 4 or 8) that keeps the long side at least ``min_side``; 1 for none."""
    if data[:2] != b"\xff\xd8":
        return 1
    size = _jpeg_size(data)
    if size is None:
        return 1
    for factor in (8, 4, 2):
        if max(size) // factor >= min_side:
            return factor
    return 1


#: ISO-BMFF brands of HEIC/HEIF stills and sequences (ISO/IEC 23008-12); AVIF ("avif"), which OpenCV reads,
#: is not among them.
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}


def _is_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


def decode_image(data: bytes, source: str = "image", *, max_pixels: int = MAX_PIXELS,
                 reduce: int = 1) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, WebP, TIFF...) to BGR uint8. ``reduce`` (2, 4, 8; JPEG only)
    decodes at that fraction of the size through libjpeg's DCT scaling, with EXIF orientation applied."""
    if not data:
        raise ImageError(f"{source}: empty file (0 bytes)", code="image_empty")
    size = header_size(data)
    if size is not None:
        check_pixels(*size, limit=max_pixels, source=source)
    buffer = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_UNCHANGED keeps alpha but ignores EXIF orientation; JPEG has no alpha and JPEG/TIFF are where
    # orientation tags live, so those decode with orientation applied (depth and colour kept).
    oriented = data[:2] == b"\xff\xd8" or data[:4] in (b"II*\x00", b"MM\x00*")
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR if oriented else cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH
    if reduce in REDUCED_FLAGS and data[:2] == b"\xff\xd8":
        flags = REDUCED_FLAGS[reduce]
    try:
        image = cv2.imdecode(buffer, flags)
    except cv2.error as exc:
        raise ImageError(f"{source}: cannot decode image ({exc.err})", code="image_unreadable") from exc
    if image is None or image.size == 0:
        if _is_heif(data):
            raise ImageError(f"{source}: a HEIC/HEIF photo (the iPhone camera's default), which this build cannot "
                             "decode: export it as JPEG (on the phone: Settings > Camera > Formats > Most "
                             "Compatible)", code="image_unsupported")
        raise ImageError(f"{source}: not a readable image (corrupt, truncated or unsupported format)",
                         code="image_unreadable")
    check_pixels(image.shape[1], image.shape[0], limit=max_pixels, source=source)
    return to_bgr8(image, source)


def read_image_bytes(path: str | Path) -> bytes:
    """An image file's bytes; ImageError with a reason code when it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path}: file is {size} bytes, above the limit of {MAX_FILE_BYTES} bytes",
                             code="image_too_large")
        data = path.read_bytes()
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image", code="image_unreadable") from None
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file", code="image_unreadable") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied", code="image_unreadable") from None
    return data


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file into BGR uint8; raises ImageError with a reason code on any failure."""
    return decode_image(read_image_bytes(path), str(path), max_pixels=max_pixels)
