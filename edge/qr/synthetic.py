"""Realistic QR test frames, generated: the data behind the decode-rate report (tests, bench, `edge eval qr`).

Each category imitates one way a card reaches the camera at a gate. A QR code is rendered from a real
card payload (segno, alphanumeric, level Q), warped into a 640x480 (or other) frame over a background
(a photo from ../shared/data when available, otherwise a synthetic clutter scene), then degraded:

    clean         printed card held flat, 3-5 px per module
    perspective   card tilted up to ~40 degrees (random homography)
    blur          defocus (Gaussian) or hand motion (line kernel)
    noise         dim-light sensor noise plus JPEG compression
    low_contrast  faded print or a dim phone screen (dark modules grey, light modules grey)
    glare         a saturated specular blob over part of the code
    moire         a phone screen shot by a camera: subpixel grid resampled, moire, gamma
    inverted      light modules on a dark background (phone "dark mode" renderers)
    small         the code far away: 1.6-2.4 px per module
    rotation      any in-plane angle
    phone_screen  all of the screen effects at once: bezel, backlight bloom, moire, tilt, glare, blur
    on_photo      a sticker on a cluttered photo, moderate tilt

Generation is deterministic for a seed. Limits: no real optics (lens distortion, rolling shutter,
auto-exposure hunting) and a simplified screen model; real photographs are the final check.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CATEGORIES = ("clean", "perspective", "blur", "noise", "low_contrast", "glare", "moire", "inverted", "small",
              "rotation", "phone_screen", "on_photo", "dark_mode", "dim_screen", "light_design")
#: Phone screens as people hold them at a gate: the screen model of "phone_screen" with the card shown in dark
#: mode (light modules on dark), at low brightness, or as a low-contrast "light" design.
PHONE_SCREENS = ("phone_screen", "dark_mode", "dim_screen", "light_design")
#: Every category shown on a screen: the phone screens and a bare screen's moire.
SCREEN_CATEGORIES = ("moire", *PHONE_SCREENS)


@dataclass(frozen=True)
class Sample:
    category: str
    frame: np.ndarray  # BGR uint8
    text: str | None  # the payload, None for a negative sample


def qr_modules(text: str) -> np.ndarray:
    """Boolean module matrix (True = dark) with the 4-module quiet zone."""
    import segno

    qr = segno.make_qr(text, error="q", mode="alphanumeric" if text.upper() == text else None, boost_error=False)
    matrix = np.array([list(row) for row in qr.matrix], dtype=bool)
    return np.pad(matrix, 4, constant_values=False)


def render_symbol(modules: np.ndarray, module_px: int = 8, dark: int = 0, light: int = 255) -> np.ndarray:
    symbol = np.where(modules, dark, light).astype(np.uint8)
    return cv2.resize(symbol, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)


def synthetic_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Gradient, random rectangles, circles and text-like strokes, plus mild noise."""
    base = np.linspace(rng.integers(40, 120), rng.integers(120, 220), width, dtype=np.float32)
    frame = np.repeat(base[None, :, None], height, axis=0).repeat(3, axis=2)
    frame *= rng.uniform(0.7, 1.1, 3)[None, None, :]
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(5, 15)):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            cv2.rectangle(frame, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 150))), color, -1)
        else:
            cv2.circle(frame, (x, y), int(rng.integers(10, 80)), color, -1)
    for _ in range(rng.integers(3, 10)):
        cv2.putText(frame, "WARD 7 ESCORT", (int(rng.integers(0, width)), int(rng.integers(0, height))),
                    cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.4, 1.2)), (20, 20, 20), 1)
    noise = rng.normal(0, 4, frame.shape)
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


def photo_backgrounds(data_dir: Path | None) -> list[np.ndarray]:
    if data_dir is None or not (data_dir / "faces").is_dir():
        return []
    from edge.imageio import load_image

    images = []
    for path in sorted((data_dir / "faces").glob("*/*.jp*g")) + sorted((data_dir / "faces").glob("*/*/*.jp*g")):
        try:
            images.append(load_image(path))
        except Exception:
            continue
    return images


def fit_background(image: np.ndarray, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    scale = max(width / image.shape[1], height / image.shape[0]) * float(rng.uniform(1.0, 1.3))
    resized = cv2.resize(image, (math.ceil(image.shape[1] * scale), math.ceil(image.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA)
    y = int(rng.integers(0, resized.shape[0] - height + 1))
    x = int(rng.integers(0, resized.shape[1] - width + 1))
    return resized[y:y + height, x:x + width].copy()


def _quad(rng: np.random.Generator, width: int, height: int, side: float, tilt: float, angle_deg: float) -> np.ndarray:
    """Destination corners of a square of ``side`` px, rotated, with each corner jittered by ``tilt``*side."""
    cx = rng.uniform(side * 0.75, width - side * 0.75) if width > side * 1.5 else width / 2
    cy = rng.uniform(side * 0.75, height - side * 0.75) if height > side * 1.5 else height / 2
    half = side / 2
    square = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    quad = square @ rot.T + [cx, cy]
    quad += rng.uniform(-tilt, tilt, (4, 2)) * side
    return quad.astype(np.float32)


def place(frame: np.ndarray, symbol: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Warp a grey symbol onto the frame at ``quad`` (anti-aliased edges)."""
    h, w = symbol.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad)
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpPerspective(symbol, matrix, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_AREA)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    symbol_bgr = warped if warped.ndim == 3 else cv2.cvtColor(warped, cv2.COLOR_GRAY2BGR)
    return (frame * (1 - alpha) + symbol_bgr * alpha).astype(np.uint8)


def _motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(4, 9))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    rotated = cv2.warpAffine(kernel, rot, (length, length))
    normalised = (rotated / max(float(rotated.sum()), 1e-6)).astype(np.float32)
    return cv2.filter2D(image, -1, normalised)


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    _, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded


def _glare(image: np.ndarray, rng: np.random.Generator, center: np.ndarray, radius: float) -> np.ndarray:
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = center + rng.uniform(-radius, radius, 2)
    blob = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (radius * rng.uniform(0.25, 0.45)) ** 2)))
    strength = rng.uniform(160, 260)
    return np.clip(image + (blob * strength)[..., None], 0, 255).astype(np.uint8)


def _screen(symbol: np.ndarray, rng: np.random.Generator, gamma: float) -> np.ndarray:
    """The symbol as an LCD shows it: an RGB subpixel grid, backlight (dark is not black), gamma."""
    big = cv2.resize(symbol, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255.0
    big = 0.08 + 0.9 * big  # backlight leak
    screen = np.zeros((*big.shape, 3), np.float32)
    for channel in range(3):
        screen[:, channel::3, 2 - channel] = big[:, channel::3]  # BGR order, R G B stripes
    screen[::3, :, :] *= 0.55  # row gaps
    return (np.power(np.clip(screen, 0, 1), gamma) * 255).astype(np.uint8)


def make_sample(category: str, text: str, rng: np.random.Generator, *, width: int = 640, height: int = 480,
                backgrounds: list[np.ndarray] | None = None) -> Sample:
    modules = qr_modules(text)
    n = modules.shape[0]
    if backgrounds and (category == "on_photo" or rng.random() < 0.5):
        frame = fit_background(backgrounds[int(rng.integers(len(backgrounds)))], width, height, rng)
    else:
        frame = synthetic_background(rng, width, height)
    module_px = {"small": rng.uniform(1.6, 2.4), "clean": rng.uniform(3.0, 5.0)}.get(category, rng.uniform(2.8, 4.2))
    side = min(n * module_px, min(width, height) * 0.92)
    angle = float(rng.uniform(0, 360)) if category == "rotation" else float(rng.uniform(-8, 8))
    tilt = {"perspective": 0.12, "on_photo": 0.05, **dict.fromkeys(PHONE_SCREENS, 0.06)}.get(category, 0.01)
    quad = _quad(rng, width, height, side, tilt, angle)
    dark, light = 0, 255
    if category == "low_contrast":
        dark = int(rng.integers(70, 110))
        light = dark + int(rng.integers(35, 60))
    elif category == "light_design":  # pastel modules on white: a "friendly" card design
        dark, light = int(rng.integers(120, 170)), 255
    symbol = render_symbol(modules, 8, dark, light)
    if category in ("inverted", "dark_mode"):
        symbol = 255 - symbol
    if category == "dark_mode":  # light-grey modules on a dark-grey background, as dark themes draw them
        symbol = (30 + symbol.astype(np.float32) * (200 / 255)).astype(np.uint8)
    if category in SCREEN_CATEGORIES:
        screen = _screen(symbol, rng, gamma=float(rng.uniform(0.7, 1.4)))
        if category == "dim_screen":  # brightness turned down: the backlight at 15-30 %
            screen = (screen.astype(np.float32) * rng.uniform(0.15, 0.3)).astype(np.uint8)
        pad = int(screen.shape[0] * 0.08)
        bezel_colour = int(rng.integers(5, 40))
        phone = category in PHONE_SCREENS
        screen = cv2.copyMakeBorder(screen, pad, pad * 3, pad, pad, cv2.BORDER_CONSTANT,
                                    value=(bezel_colour,) * 3) if phone else screen
        if phone:
            quad = _quad(rng, width, height, side * 1.25, tilt, angle)
            h, w = screen.shape[:2]
            scale = np.array([w / max(w, h), h / max(w, h)], np.float32)
            centre = quad.mean(axis=0)
            quad = ((quad - centre) * scale + centre).astype(np.float32)
        frame = place(frame, screen, quad)
    else:
        frame = place(frame, symbol, quad)
    centre = quad.mean(axis=0)
    if category == "blur":
        if rng.random() < 0.5:
            frame = _motion_blur(frame, rng)
        else:
            frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(1.0, 1.8))
    elif category == "noise":
        frame = np.clip(frame * rng.uniform(0.35, 0.6) + rng.normal(0, rng.uniform(8, 16), frame.shape), 0, 255)
        frame = _jpeg(frame.astype(np.uint8), int(rng.integers(35, 70)))
    elif category == "glare":
        frame = _glare(frame, rng, centre, side * 0.35)
    elif category == "moire":
        frame = cv2.GaussianBlur(frame, (0, 0), 0.6)
    elif category in PHONE_SCREENS:
        bloom = cv2.GaussianBlur(frame, (0, 0), 6)
        frame = cv2.addWeighted(frame, 0.85, bloom, 0.25, 0)
        if rng.random() < 0.6:
            frame = _glare(frame, rng, centre, side * 0.3)
        frame = cv2.GaussianBlur(frame, (0, 0), rng.uniform(0.5, 1.0))
        frame = _jpeg(frame, int(rng.integers(60, 90)))
    return Sample(category, np.ascontiguousarray(frame), text)


def card_texts(count: int, seed: int = 0) -> list[str]:
    """Real card payloads (all three card types), so symbol versions are realistic.

    The issuer's Ed25519 key is derived from ``seed``: Ed25519 signatures are deterministic, so one seed
    gives the same texts, symbols and frames in every run (an ES256 signature is as long, but randomised).
    """
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ed25519

    from edge.credential.issuer import CardIssuer

    rng = np.random.default_rng(seed)
    issuer = CardIssuer(ed25519.Ed25519PrivateKey.from_private_bytes(rng.bytes(32)), "hospital-a")
    types = ["health_card", "escort_permit", "vaccination_appointment"]
    texts = []
    for i in range(count):
        text, _ = issuer.issue(card_type=types[i % 3], holder=rng.bytes(16), site="ward-7-gate",
                               ward="paediatrics" if i % 3 == 1 else None, station="vax-2" if i % 3 == 2 else None,
                               template_sha256=hashlib.sha256(rng.bytes(8)).digest(), model_id="sface-2021dec-fp32",
                               card_id=rng.bytes(16), now=1_800_000_000)
        texts.append(text)
    return texts


def generate(per_category: int, *, seed: int = 0, width: int = 640, height: int = 480,
             data_dir: Path | None = None, categories: tuple[str, ...] = CATEGORIES) -> Iterator[Sample]:
    backgrounds = photo_backgrounds(data_dir)
    texts = card_texts(per_category, seed)
    for category in categories:
        rng = np.random.default_rng([seed, CATEGORIES.index(category)])
        for i in range(per_category):
            yield make_sample(category, texts[i], rng, width=width, height=height, backgrounds=backgrounds)
