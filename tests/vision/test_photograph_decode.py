"""Large JPEG photographs are decoded at a reduced size when the face stays large enough (issue 13), with the
same embedding as the full-size decode; a small face is re-read at full size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.imageio import decode_image, jpeg_reduction, load_image

pytestmark = pytest.mark.slow


def big_jpeg(image: np.ndarray, long_side: int) -> bytes:
    scale = long_side / max(image.shape[:2])
    upscaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", upscaled, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def test_a_big_portrait_is_decoded_reduced_with_the_same_embedding(testdata, face_stage):
    data = big_jpeg(load_image(testdata / "faces/people/obama/obama.jpg"), 3000)
    assert jpeg_reduction(data, 1280) == 2
    reduced = decode_image(data, reduce=2)
    assert max(reduced.shape[:2]) == 1500
    fast = face_stage.embed_photograph(data, "big")
    full = face_stage.embed_image(decode_image(data))
    assert float(fast.vector @ full.vector) > 0.98
    assert fast.face.eye_distance < full.face.eye_distance  # it really worked on the reduced image


def test_a_small_face_in_a_big_photo_is_read_at_full_size(testdata, face_stage):
    data = big_jpeg(load_image(testdata / "faces/groups/obama_and_biden.jpg"), 2600)
    assert jpeg_reduction(data, 1280) == 2
    fast = face_stage.embed_photograph(data, "group")
    full = face_stage.embed_image(decode_image(data))
    np.testing.assert_allclose(fast.vector, full.vector, atol=1e-6)  # the full-size decode decided


def test_non_jpeg_and_small_images_are_not_reduced(testdata):
    png = cv2.imencode(".png", np.zeros((3000, 3000, 3), np.uint8))[1].tobytes()
    assert jpeg_reduction(png, 1280) == 1
    small = (testdata / "faces/people/obama/obama-240p.jpg").read_bytes()
    assert jpeg_reduction(small, 1280) == 1
