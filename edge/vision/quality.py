"""Face-quality gates: size, pose, sharpness and exposure, each returning a reason when it fails.

Pose comes from the 5 landmarks alone (no 3-D model), so it is an estimate good to roughly ±10°:
yaw from where the nose tip falls between the eyes horizontally, pitch from where it falls between the
eye line and the mouth line, each compared with the frontal template and mapped through asin.
Sharpness is the variance of the Laplacian of the aligned grey crop; brightness its mean grey level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.align import TEMPLATE
from edge.vision.types import Face, Quality

_FRONTAL_PITCH_RATIO = float((TEMPLATE[2, 1] - TEMPLATE[:2, 1].mean()) /
                             (TEMPLATE[3:, 1].mean() - TEMPLATE[:2, 1].mean()))


@dataclass(frozen=True, kw_only=True)
class QualityLimits:
    min_eye_distance_px: float = 20.0
    max_yaw_deg: float = 35.0
    max_pitch_deg: float = 30.0
    min_sharpness: float = 15.0
    min_brightness: float = 40.0
    max_brightness: float = 220.0


def estimate_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from 5 landmarks; positive yaw = nose towards the image's right."""
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_mid = lm[:2].mean(axis=0)
    mouth_mid = lm[3:].mean(axis=0)
    eye_vec = lm[1] - lm[0]
    eye_len = float(np.linalg.norm(eye_vec))
    if eye_len < 1e-6:
        return 0.0, 0.0
    axis_x = eye_vec / eye_len
    axis_y = np.array([-axis_x[1], axis_x[0]])
    nose = lm[2] - eye_mid
    yaw_ratio = float(nose @ axis_x) / (eye_len / 2)
    vertical = float((mouth_mid - eye_mid) @ axis_y)
    pitch_ratio = float(nose @ axis_y) / vertical if abs(vertical) > 1e-6 else _FRONTAL_PITCH_RATIO
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, yaw_ratio))))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, 2.0 * (pitch_ratio - _FRONTAL_PITCH_RATIO)))))
    return yaw, pitch


def assess_quality(face: Face, aligned: np.ndarray, limits: QualityLimits | None = None) -> Quality:
    limits = limits or QualityLimits()
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    inner = grey[16:-16, 16:-16]
    sharpness = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    brightness = float(inner.mean())
    yaw, pitch = estimate_pose(face.landmarks)
    reasons = []
    if face.eye_distance < limits.min_eye_distance_px:
        reasons.append("face_too_small")
    if abs(yaw) > limits.max_yaw_deg:
        reasons.append("face_turned")
    if abs(pitch) > limits.max_pitch_deg:
        reasons.append("face_tilted")
    if sharpness < limits.min_sharpness:
        reasons.append("face_blurred")
    if brightness < limits.min_brightness:
        reasons.append("face_too_dark")
    elif brightness > limits.max_brightness:
        reasons.append("face_too_bright")
    return Quality(eye_distance_px=face.eye_distance, yaw_deg=yaw, pitch_deg=pitch, sharpness=sharpness,
                   brightness=brightness, reasons=tuple(reasons))
