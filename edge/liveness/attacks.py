"""Presentation-attack generator from real faces, for evaluation (``edge eval liveness``, bench/).

Each presentation is a list of (timestamp s, BGR frame) at 30 fps, 640x480, the way the gate camera
would see it:

    attack_print        a printed photo held up: print resolution loss, halftone dots, ink colour shift
                        (lower saturation and contrast, warm paper), hand tremor (small homography jitter),
                        sensor noise; half of them show the paper's white border on a room background.
    attack_replay       a real video played on a phone or tablet: RGB subpixel grid resampled by the
                        camera (moire), display gamma, refresh banding, a bright glare blob, a black bezel,
                        small hand motion and recapture blur/noise.
    attack_waved_photo  a photo tilted and waved in front of the camera: large smooth planar
                        (homography) motion of one image, which fakes head pose but stays planar.
    attack_bent_photo   a print trimmed to the head and bent around a vertical axis (a cylinder, radius
                        0.3-1.0 photo widths, convex towards the camera) and slowly turned about that
                        axis: the nose sits in front of the plane of the eyes and mouth, as on a head,
                        but the sheet is flat along its vertical axis. Rendered by ray-casting every
                        camera pixel onto the cylinder, so the projection is exact, not piecewise planar.

Limits, stated plainly: these are physical models, not captures. Real prints have paper texture and
lighting gradients we do not model, real screens have their own subpixel layouts and refresh rates, and
an attacker can choose a large, matte, high-resolution display. Rates on synthetic attacks are an upper
bound on what a real evaluation would show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np

from edge.vision.detector import FaceDetector
from edge.vision.face_stage import choose_face

FPS = 30.0
SIZE = (640, 480)

Presentation = list[tuple[float, np.ndarray]]


def _room(rng: np.random.Generator) -> np.ndarray:
    w, h = SIZE
    wall = np.array(rng.integers(120, 200, 3), np.float32)
    gradient = np.linspace(0.8, 1.1, w, dtype=np.float32)[None, :, None]
    room = np.clip(wall[None, None, :] * gradient * np.ones((h, 1, 1), np.float32), 0, 255).astype(np.uint8)
    for _ in range(3):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        cv2.rectangle(room, (x, y), (x + int(rng.integers(40, 200)), y + int(rng.integers(40, 200))), colour, -1)
    return cv2.GaussianBlur(room, (0, 0), 3)


def _fit(image: np.ndarray, box: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    w, h = box
    scale = min(w / image.shape[1], h / image.shape[0])
    return cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))),
                      interpolation=interpolation)


def _warp_into(background: np.ndarray, picture: np.ndarray, quad: np.ndarray) -> np.ndarray:
    h, w = picture.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    size = (background.shape[1], background.shape[0])
    warped = cv2.warpPerspective(picture, matrix, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return (background * (1 - alpha) + warped * alpha).astype(np.uint8)


def _centred_quad(w: float, h: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2],
                       [cx - w / 2, cy + h / 2]], np.float32)


def _noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def printed(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo as a print: resolution loss, ink colour shift, halftone dots."""
    small = cv2.resize(photo, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    image = cv2.resize(small, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    hsv = cv2.cvtColor(image.astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] *= rng.uniform(0.6, 0.85)
    image = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    image = (40 + image * rng.uniform(0.7, 0.85)).astype(np.float32)  # ink never reaches black, paper never white
    image *= np.array([rng.uniform(0.9, 0.97), 1.0, rng.uniform(1.0, 1.06)], np.float32)  # warm paper
    period = rng.uniform(3.0, 5.0)
    yy, xx = np.mgrid[0:photo.shape[0], 0:photo.shape[1]].astype(np.float32)
    angle = np.deg2rad(rng.uniform(15, 75))
    dots = 0.5 + 0.5 * np.cos(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period) * \
        np.cos(2 * np.pi * (-xx * np.sin(angle) + yy * np.cos(angle)) / period)
    image *= (0.82 + 0.18 * dots)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def print_attack(photo: np.ndarray, rng: np.random.Generator, frames: int = 45) -> Presentation:
    with_border = bool(rng.random() < 0.5)
    room = _room(rng)
    picture = printed(photo, rng)
    if with_border:
        pad = max(8, picture.shape[0] // 12)
        picture = cv2.copyMakeBorder(picture, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(235, 235, 230))
        picture = _fit(picture, (int(SIZE[0] * 0.75), int(SIZE[1] * 0.95)))
    else:
        picture = _fit(picture, (int(SIZE[0] * 1.3), int(SIZE[1] * 1.3)))  # held close: fills the view
    h, w = picture.shape[:2]
    out = []
    for i in range(frames):
        drift = np.array([np.sin(i / 7) * 3, np.cos(i / 9) * 2], np.float32)
        jitter = rng.normal(0, 1.5, (4, 2)).astype(np.float32) + drift
        quad = _centred_quad(w, h, SIZE[0] / 2, SIZE[1] / 2) + jitter
        frame = _warp_into(room, picture, quad)
        out.append((i / FPS, _noise(frame, rng, 3.0)))
    return out


def screen(frame: np.ndarray, rng: np.random.Generator, phase: float) -> np.ndarray:
    """A frame as an LCD emits it: RGB stripes, row gaps, gamma, refresh banding, at 3x resolution."""
    big = cv2.resize(frame, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255.0
    out = np.zeros_like(big)
    for channel in range(3):
        out[:, channel::3, 2 - channel] = big[:, channel::3, 2 - channel]
    out[::3] *= 0.75
    out = np.power(np.clip(out * 1.6, 0, 1), rng.uniform(0.75, 0.95))
    # The camera lens blurs the grid a little before the sensor samples it (optical MTF).
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.9, 1.3))
    rows = np.arange(out.shape[0], dtype=np.float32)
    out *= (0.92 + 0.08 * np.sin(2 * np.pi * (rows / out.shape[0] * 3 + phase)))[:, None, None]
    return (out * 255).astype(np.uint8)


def replay_attack(video: Presentation, rng: np.random.Generator) -> Presentation:
    room = _room(rng)
    bezel = int(rng.integers(8, 30))
    glare_at = rng.uniform([0.3, 0.2], [0.7, 0.6])
    out = []
    for i, (t, frame) in enumerate(video):
        shown = screen(frame, rng, phase=i * 0.37)
        shown = cv2.copyMakeBorder(shown, bezel * 3, bezel * 3, bezel * 3, bezel * 3, cv2.BORDER_CONSTANT,
                                   value=(12, 12, 12))
        # A sensor samples the screen without an ideal low-pass filter: the subpixel grid aliases (moire).
        fit = _fit(shown, (int(SIZE[0] * 0.95), int(SIZE[1] * 0.95)), cv2.INTER_LINEAR)
        h, w = fit.shape[:2]
        quad = _centred_quad(w, h, SIZE[0] / 2, SIZE[1] / 2) + rng.normal(0, 1.2, (4, 2)).astype(np.float32)
        captured = _warp_into(room, fit, quad).astype(np.float32)
        yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(np.float32)
        gx, gy = glare_at * np.array(SIZE)
        captured += 200 * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (SIZE[0] * 0.08) ** 2))[..., None]
        blurred = cv2.GaussianBlur(np.clip(captured, 0, 255).astype(np.uint8), (0, 0), 0.7)
        out.append((t, _noise(blurred, rng, 2.5)))
    return out


def waved_photo_attack(photo: np.ndarray, rng: np.random.Generator, frames: int = 45) -> Presentation:
    room = _room(rng)
    picture = _fit(photo, (int(SIZE[0] * 0.8), int(SIZE[1] * 0.9)))
    h, w = picture.shape[:2]
    amplitude = rng.uniform(0.08, 0.18)
    speed = rng.uniform(0.15, 0.3)
    out = []
    for i in range(frames):
        a = np.sin(i * speed)  # tilt about the vertical axis: one side nearer the camera
        b = np.sin(i * speed * 0.7 + 1.0)
        quad = _centred_quad(w, h, SIZE[0] / 2 + a * 20, SIZE[1] / 2 + b * 10)
        quad[[0, 3], 1] += np.array([-1, 1], np.float32) * a * amplitude * h
        quad[[1, 2], 1] -= np.array([-1, 1], np.float32) * a * amplitude * h
        quad[[0, 1], 0] += np.array([1, -1], np.float32) * b * amplitude * w * 0.5
        out.append((i / FPS, _noise(_warp_into(room, printed(photo, rng) if i == 0 else picture, quad), rng, 3.0)))
    return out


def trimmed_to_face(photo: np.ndarray, box: tuple[float, float, float, float], margin: float = 1.4) -> np.ndarray:
    """The print cut down to the head, as an attacker trims it to fill the view: ``margin`` face sizes
    above/below the face centre, 0.9 of that to either side (box is x, y, w, h in pixels)."""
    x, y, w, h = box
    cx, cy, s = x + w / 2, y + h / 2, margin * max(w, h)
    top, left = int(max(0, cy - s)), int(max(0, cx - 0.9 * s))
    return photo[top:int(cy + s), left:int(cx + 0.9 * s)].copy()


def trimmed_heads(photos: list[np.ndarray], detector: FaceDetector) -> list[np.ndarray]:
    """Each photo in which a face is found, trimmed to the face the gate would choose."""
    return [trimmed_to_face(photo, choose_face(faces).box) for photo in photos if (faces := detector.detect(photo))]


def bent_photo_attack(photo: np.ndarray, rng: np.random.Generator, frames: int = 45,
                      radius_widths: float | None = None,
                      yaw_deg_at: Callable[[float], float] | None = None,
                      axis: str = "vertical") -> Presentation:
    """A printed photo curved around a cylinder and turned slowly about the vertical.

    Units: photo pixels are world units; the camera has focal length ``focal`` pixels and the sheet's
    centre sits ``distance`` photo pixels in front of it, chosen so the sheet spans ~70 % of the frame
    height. ``radius_widths`` is the cylinder radius in photo widths (random in 0.3-1.0 when None; on a
    print trimmed to the head, 0.3 is about a real head's curvature). ``axis`` is the sheet's own bending
    axis: "vertical" (bent left-right, the nose stands out of the eyes and mouth as on a head), or
    "horizontal" (bent top-bottom, the nose row stands out). The turn is about the camera's vertical
    through the sheet's centre: 15-30 degrees peak, back and forth, unless ``yaw_deg_at(t)`` gives it in
    degrees at t seconds (an attacker answering a challenge). A very large radius (1e4) is a flat photo.
    """
    if axis not in ("vertical", "horizontal"):
        raise ValueError(f"axis must be 'vertical' or 'horizontal', not {axis!r}")
    room = _room(rng).astype(np.float32)
    picture = printed(photo, rng).astype(np.float32)
    h, w = picture.shape[:2]
    radius = w * (radius_widths if radius_widths is not None else rng.uniform(0.3, 1.0))
    distance = 3.0 * h
    focal = rng.uniform(0.6, 0.8) * SIZE[1] * 3.0
    amplitude = np.deg2rad(rng.uniform(15, 30))
    period_s = rng.uniform(1.2, 2.5)
    phase = rng.uniform(0, 2 * np.pi)
    cx, cy = SIZE[0] / 2 + rng.uniform(-30, 30), SIZE[1] / 2 + rng.uniform(-20, 20)
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(np.float32)
    # Sheet-local frame: x right, y down, z away from the camera; the flat sheet is z = 0 and the cylinder
    # axis (direction `bend`) runs `radius` behind it. `across` is the sheet direction that curves.
    bend = np.array([0.0, 1.0, 0.0]) if axis == "vertical" else np.array([1.0, 0.0, 0.0])
    across = np.array([1.0, 0.0, 0.0]) if axis == "vertical" else np.array([0.0, 1.0, 0.0])
    out = []
    for i in range(frames):
        t = i / FPS
        yaw = (np.deg2rad(yaw_deg_at(t)) if yaw_deg_at is not None
               else amplitude * np.sin(2 * np.pi * t / period_s + phase))
        tremor = rng.normal(0, 1.0, 2)
        rot = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]])
        b, n = rot @ bend, rot @ np.array([0.0, 0.0, 1.0])  # world axis direction; sheet normal (away)
        centre = np.array([0.0, 0.0, distance])
        # Ray (dx, dy, 1) per camera pixel; only the parts perpendicular to the axis meet the circle.
        d = np.stack([(xx - cx - tremor[0]).astype(np.float64) / focal,
                      (yy - cy - tremor[1]).astype(np.float64) / focal, np.ones(xx.shape)], axis=-1)
        d_perp = d - (d @ b)[..., None] * b
        c_perp = centre - (centre @ b) * b
        # |t d_perp - (c_perp + radius n)|^2 = radius^2, written without the radius^2 terms (n is
        # perpendicular to b) and with the root in its stable form, so a nearly flat sheet (huge radius)
        # does not cancel to nothing. The nearer root is the front of the cylinder.
        a = np.einsum("...k,...k->...", d_perp, d_perp)
        half_b = -(d_perp @ c_perp + radius * (d_perp @ n))
        c = float(c_perp @ c_perp + 2.0 * radius * (c_perp @ n))
        disc = half_b * half_b - a * c
        hit = disc >= 0
        depth = c / (-half_b + np.sqrt(np.where(hit, disc, 0)))
        local = (depth[..., None] * d - centre) @ rot  # rot^T applied to each point: sheet-local
        around = local - radius * np.array([0.0, 0.0, 1.0]) - (local @ bend)[..., None] * bend
        theta = np.arctan2(around @ across, -around[..., 2])  # angle along the sheet from its centre line
        along, arc = (local @ bend), radius * theta
        u = ((arc if axis == "vertical" else along) + w / 2).astype(np.float32)
        v = ((along if axis == "vertical" else arc) + h / 2).astype(np.float32)
        inside = hit & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1)
        sampled = cv2.remap(picture, u, v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # The sheet's turned-away side is darker: cosine of its normal's angle to the optical axis.
        facing = np.cos(theta) * n[2] - np.sin(theta) * (rot @ across)[2]
        shade = (0.85 + 0.15 * facing)[..., None]
        frame = np.where(inside[..., None], sampled * shade, room)
        out.append((t, _noise(np.clip(frame, 0, 255), rng, 3.0)))
    return out


def live_windows(video: Presentation, length: int = 45, step: int = 15) -> Iterator[Presentation]:
    for start in range(0, len(video) - length + 1, step):
        window = video[start:start + length]
        t0 = window[0][0]
        yield [(t - t0, frame) for t, frame in window]
