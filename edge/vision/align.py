"""5-point similarity alignment onto SFace's 112x112 template.

The transform is the least-squares similarity (rotation, uniform scale, translation) from the detected
landmarks to the ArcFace template (Umeyama 1991), the same template OpenCV's ``FaceRecognizerSF`` uses.
When the face in the frame is much larger than 112 px, the region is first downscaled with INTER_AREA:
warping straight from a large face with bilinear sampling aliases and costs recognition accuracy.
"""

from __future__ import annotations

import cv2
import numpy as np

ALIGNED_SIZE = 112
#: Landmark targets in the 112x112 crop (pixels): eyes, nose tip, mouth corners.
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity mapping ``src`` points onto ``dst`` (both (N, 2)); returns a 2x3 matrix."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src)
    scale = float((singular * d).sum() / src_var) if src_var > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Downscale to ``size`` (w, h) with area averaging, fast: Gaussian halvings (pyrDown) while the image is
    at least twice the target, then INTER_AREA for the rest. INTER_AREA alone costs time in proportion to the
    source (7 ms for a 2048 px photograph to 640 px here, 3 ms this way); the result differs by about one grey
    level on average (bench/face.py)."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1]:
        image = cv2.pyrDown(image)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def transform_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity matrix (output pixels per input pixel)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ALIGNED_SIZE,
               template: np.ndarray | None = None) -> np.ndarray:
    """Warp the face given by 5 landmarks (frame pixels) to a ``size`` x ``size`` BGR crop, the landmarks
    onto ``template`` (pixels of that crop; default SFace's, scaled to ``size``)."""
    template = TEMPLATE * (size / ALIGNED_SIZE) if template is None else np.asarray(template, np.float64)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    matrix = similarity_transform(landmarks, template)
    scale = transform_scale(matrix)
    if scale < 0.5:
        # Downscale just the face region to about twice the output resolution first (anti-aliasing).
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], dtype=np.float64)
        mapped = corners @ inverse.T
        x0, y0 = np.floor(mapped.min(axis=0)).astype(int)
        x1, y1 = np.ceil(mapped.max(axis=0)).astype(int)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            factor = 2.0 * scale
            region = image[y0:y1, x0:x1]
            small = shrink(region, (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))))
            fx, fy = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
            local = (landmarks - [x0, y0]) * [fx, fy]
            matrix = similarity_transform(local, template)
            image = small
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
