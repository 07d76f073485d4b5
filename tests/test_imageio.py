import struct
import zlib

import cv2
import numpy as np
import pytest

from edge.errors import ImageError
from edge.imageio import decode_image, header_size, load_image, to_bgr8


def _png(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def test_header_size_png_and_jpeg():
    img = np.zeros((37, 53, 3), np.uint8)
    assert header_size(_png(img)) == (53, 37)
    ok, jpg = cv2.imencode(".jpg", img)
    assert header_size(jpg.tobytes()) == (53, 37)


@pytest.mark.parametrize("shape,dtype", [((20, 30), np.uint8), ((20, 30, 4), np.uint8), ((20, 30, 3), np.uint16),
                                         ((20, 30), np.uint16)])
def test_grey_rgba_16bit_become_bgr8(shape, dtype):
    img = np.full(shape, 200 if dtype == np.uint8 else 51400, dtype)
    if len(shape) == 3 and shape[2] == 4:
        img[..., 3] = 255  # opaque
    out = decode_image(_png(img))
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    assert abs(int(out[0, 0, 0]) - 200) <= 1


def test_rgba_alpha_composited_over_grey():
    img = np.zeros((4, 4, 4), np.uint8)
    img[..., :3] = 255
    img[..., 3] = 0  # fully transparent white
    out = to_bgr8(img)
    assert np.all(out == 128)


def test_empty_and_garbage_and_truncated(tmp_path):
    with pytest.raises(ImageError) as e:
        decode_image(b"")
    assert e.value.code == "image_empty"
    with pytest.raises(ImageError) as e:
        decode_image(b"this is not an image at all")
    assert e.value.code == "image_unreadable"
    ok, jpg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    truncated = jpg.tobytes()[:40]
    with pytest.raises(ImageError):
        decode_image(truncated)
    (tmp_path / "zero.jpg").write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load_image(tmp_path / "zero.jpg")
    assert e.value.code == "image_empty"
    with pytest.raises(ImageError):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError):
        load_image(tmp_path)


def test_absurd_size_refused_from_header_before_decoding():
    # A syntactically valid PNG header claiming 100000 x 100000 pixels, with a tiny body.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    with pytest.raises(ImageError) as e:
        decode_image(png + b"\x00" * 16)
    assert e.value.code == "image_too_large"
    assert "40000000" in e.value.message  # the limit is in the message


def test_limit_is_configurable():
    img = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ImageError) as e:
        decode_image(_png(img), max_pixels=5000)
    assert e.value.code == "image_too_large"


def _with_exif_orientation(jpg: bytes, orientation: int) -> bytes:
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, orientation)
    tiff += struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


def test_exif_orientation_is_applied():
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = 255  # a white band on the left
    _, buf = cv2.imencode(".jpg", img)
    plain = decode_image(buf.tobytes())
    assert plain.shape == (40, 80, 3)
    rotated = decode_image(_with_exif_orientation(buf.tobytes(), 6))  # "rotate 90 CW to display"
    assert rotated.shape == (80, 40, 3)
    assert rotated[:20].mean() > 200 and rotated[-20:].mean() < 50  # the band is now at the top


def test_grey_jpeg_becomes_bgr():
    _, buf = cv2.imencode(".jpg", np.full((30, 30), 90, np.uint8))
    out = decode_image(buf.tobytes())
    assert out.shape == (30, 30, 3) and abs(int(out[0, 0, 0]) - 90) <= 2


@pytest.mark.parametrize("params", [[cv2.IMWRITE_WEBP_QUALITY, 80], [cv2.IMWRITE_WEBP_QUALITY, 101]])
def test_webp_header_size_lossy_and_lossless(params):
    ok, buf = cv2.imencode(".webp", np.zeros((37, 53, 3), np.uint8), params)
    if not ok:
        pytest.skip("this OpenCV build cannot write WebP")
    assert header_size(buf.tobytes()) == (53, 37)


def test_absurd_webp_refused_from_header():
    # A VP8X (extended) header claiming a 16000 x 16000 canvas.
    vp8x = b"VP8X" + (10).to_bytes(4, "little") + b"\x00\x00\x00\x00" + (15999).to_bytes(3, "little") * 2
    data = b"RIFF" + (len(vp8x) + 4).to_bytes(4, "little") + b"WEBP" + vp8x
    with pytest.raises(ImageError) as e:
        decode_image(data + b"\x00" * 32)
    assert e.value.code == "image_too_large"


def test_an_iphone_heic_photo_says_what_it_is_and_what_to_do():
    """OpenCV decodes AVIF but not HEIC, the iPhone camera's default: the refusal names the format and the fix
    instead of 'corrupt, truncated or unsupported'."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(ImageError) as e:
        decode_image(heic, "IMG_0001.HEIC")
    assert e.value.code == "image_unsupported" and "HEIC" in e.value.message and "JPEG" in e.value.message
    with pytest.raises(ImageError) as e:
        decode_image(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, "clip.mp4")
    assert e.value.code == "image_unreadable"
