import math

import cv2
import numpy as np
import pytest

from edge.vision.align import TEMPLATE, align_face, similarity_transform, transform_scale


def _similarity(angle_deg, scale, tx, ty):
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


@pytest.mark.parametrize("angle,scale,tx,ty", [(0, 1, 0, 0), (30, 2.5, 100, -40), (-75, 0.3, 5, 7), (180, 1.1, 0, 0)])
def test_recovers_known_similarity(angle, scale, tx, ty):
    m = _similarity(angle, scale, tx, ty)
    src = TEMPLATE
    dst = src @ m[:, :2].T + m[:, 2]
    estimated = similarity_transform(src, dst)
    np.testing.assert_allclose(estimated, m, atol=1e-9)
    assert transform_scale(estimated) == pytest.approx(scale)


def test_agrees_with_opencv_least_squares_on_noisy_points():
    rng = np.random.default_rng(1)
    src = TEMPLATE + rng.normal(0, 2, TEMPLATE.shape)
    m = _similarity(12, 1.7, 30, 20)
    dst = src @ m[:, :2].T + m[:, 2] + rng.normal(0, 1.0, src.shape)
    ours = similarity_transform(src, dst)
    theirs, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    np.testing.assert_allclose(ours, theirs, atol=0.05 * np.abs(theirs).max())


def test_align_puts_landmarks_on_template():
    # Draw five dots at landmarks under a known transform; after alignment they sit on the template.
    m = _similarity(20, 3.0, 200, 150)
    landmarks = TEMPLATE @ m[:, :2].T + m[:, 2]
    image = np.zeros((800, 800, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 6, (255, 255, 255), -1)
    aligned = align_face(image, landmarks)
    assert aligned.shape == (112, 112, 3)
    for x, y in TEMPLATE:
        assert aligned[round(y), round(x)].min() > 200


def test_large_face_path_is_antialiased_and_consistent():
    # A face 10x larger than the template takes the downscale-first path; the dots still land right.
    m = _similarity(0, 10.0, 50, 50)
    landmarks = TEMPLATE @ m[:, :2].T + m[:, 2]
    image = np.zeros((1300, 1300, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 25, (255, 255, 255), -1)
    aligned = align_face(image, landmarks)
    for x, y in TEMPLATE:
        assert aligned[round(y), round(x)].min() > 200
