"""Building blocks of ``edge demo`` (and of the end-to-end tests): a gate scene, a dev issuer, a daemon.

The scene is what the gate camera would see: first the card's QR code on a phone held up to the camera
(rendered from the real card text, on a screen in a room), then the holder's face. The face frames come
from ../shared/data (a real video of a speaker, or a portrait printed and held up for the attack case).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.camera.sources import ReplaySource
from edge.credential.issuer import CardIssuer
from edge.credential.keys import generate_issuer_key
from edge.credential.trust import RevocationList, TrustList
from edge.qr.synthetic import qr_modules, render_symbol

HOLDER_PORTRAIT = Path("faces/people/lin_manuel_miranda/lin-manuel-miranda.png")
HOLDER_VIDEO = Path("video/short_hamilton_clip.mp4")
HOLDER_VIDEO_START_S = 3.2  # one speaker, no scene cut, natural head movement


def data_dir() -> Path:
    env = os.environ.get("EDGE_TESTDATA")
    candidates = [Path(env)] if env else [Path.cwd().parent / "shared" / "data",
                                          Path(__file__).resolve().parents[2] / "shared" / "data"]
    for path in candidates:
        if (path / HOLDER_VIDEO).is_file():
            return path
    raise FileNotFoundError("the demo needs the shared test data (faces and video): set EDGE_TESTDATA to the "
                            f"folder that holds {HOLDER_VIDEO} (looked in {', '.join(map(str, candidates))})")


def phone_qr_frame(card_text: str, size: tuple[int, int] = (640, 480), seed: int = 0) -> np.ndarray:
    """A phone showing the card's QR code, held up in front of the gate camera."""
    rng = np.random.default_rng(seed)
    w, h = size
    wall = np.full((h, w, 3), (150, 160, 170), np.uint8)
    frame = cv2.GaussianBlur((wall + rng.normal(0, 6, wall.shape)).clip(0, 255).astype(np.uint8), (0, 0), 2)
    symbol = render_symbol(qr_modules(card_text), 4)
    side = min(symbol.shape[0], int(h * 0.8))
    symbol = cv2.resize(symbol, (side, side), interpolation=cv2.INTER_AREA)
    phone = np.full((int(side * 1.5), int(side * 1.1), 3), 25, np.uint8)
    y0, x0 = int(side * 0.2), int(side * 0.05)
    phone[y0:y0 + side, x0:x0 + side] = cv2.cvtColor(symbol, cv2.COLOR_GRAY2BGR)
    ph, pw = phone.shape[:2]
    scale = min(h * 0.95 / ph, w * 0.9 / pw)
    shown = cv2.resize(phone, (int(pw * scale), int(ph * scale)), interpolation=cv2.INTER_AREA)
    ph, pw = shown.shape[:2]
    top, left = (h - ph) // 2, (w - pw) // 2
    frame[top:top + ph, left:left + pw] = shown
    return frame


def speaker_frames(data: Path, count: int = 45) -> list[np.ndarray]:
    with ReplaySource(data / HOLDER_VIDEO, start_s=HOLDER_VIDEO_START_S, max_frames=count) as source:
        return [frame for _, frame in source.frames()]


def write_scene(out: Path, card_text: str | None, face_frames: Sequence[np.ndarray], qr_frames: int = 3) -> Path:
    """Write a replayable gate session (JPEG frames, sorted by name) to ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    index = 0
    if card_text is not None:
        for i in range(qr_frames):
            frame = phone_qr_frame(card_text, seed=i)
            cv2.imwrite(str(out / f"{index:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            index += 1
    for frame in face_frames:
        cv2.imwrite(str(out / f"{index:04d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        index += 1
    return out


class DevIssuer:
    """An issuer with its trust list and revocation list files, for demos and tests."""

    def __init__(self, folder: Path, name: str = "demo-hospital") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.key = generate_issuer_key("ES256")
        self.issuer = CardIssuer(self.key, name)
        self.trust = TrustList(version=1)
        self.trust.add(name, self.key.public_key())
        self.revocations = RevocationList(version=1)
        self.save()

    @property
    def trust_path(self) -> Path:
        return self.folder / "trust.json"

    @property
    def revocations_path(self) -> Path:
        return self.folder / "revocations.json"

    def save(self) -> None:
        import json

        self.trust_path.write_text(json.dumps(self.trust.to_json()))
        self.revocations_path.write_text(json.dumps(self.revocations.to_json()))

    def issue(self, template_sha256: bytes, *, site: str, card_type: str = "escort_permit",
              valid_for_s: int = 3600, now: float | None = None, ward: str = "paediatrics",
              condition_until: int | None = None, age_band: str | None = None,
              model_id: str = "sface-2021dec-fp32") -> tuple[str, bytes]:
        text, card = self.issuer.issue(card_type=card_type, holder=hashlib.sha256(template_sha256).digest()[:16],
                                       site=site, ward=ward, template_sha256=template_sha256,
                                       model_id=model_id, valid_for_s=valid_for_s, now=now,
                                       condition_until=condition_until, age_band=age_band)
        return text, card.card_id
