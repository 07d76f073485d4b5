"""Frame sources behind one protocol (edge.camera.base).

``ReplaySource`` plays a video file or a folder of images (tests, demos, evaluation) with timestamps from
the file's frame rate; ``OpenCVSource`` reads a V4L2/USB camera; ``PiCamera2Source`` (edge.camera.picam)
drives the Raspberry Pi camera and imports picamera2 only when constructed. All are context managers and
release the device in ``close()``. Sessions do not open sources themselves: edge.camera.feed owns them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.camera.base import Closing, FrameSource, TimedFrame
from edge.errors import CameraError, ImageError
from edge.imageio import load_image

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class ReplaySource(Closing):
    """A video file or a folder of frames (sorted by name), at ``fps`` (default: the file's, else 15).

    ``realtime`` paces delivery to the timestamps, as a camera would; ``max_frames`` stops early.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, realtime: bool = False,
                 max_frames: int | None = None, start_s: float = 0.0) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CameraError(f"replay source {self.path} does not exist", code="camera_unavailable")
        self.fps = fps
        self.realtime = realtime
        self.max_frames = max_frames
        self.start_s = start_s
        self._capture: cv2.VideoCapture | None = None

    def _folder_frames(self) -> Iterator[np.ndarray]:
        files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraError(f"{self.path} holds no image frames", code="camera_unavailable")
        for file in files:
            try:
                yield load_image(file)
            except ImageError as exc:
                log.warning("skipping unreadable frame %s: %s", file, exc.code)

    def _video_frames(self) -> Iterator[np.ndarray]:
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise CameraError(f"cannot open video {self.path}", code="camera_unavailable")
        if self.fps is None:
            native = self._capture.get(cv2.CAP_PROP_FPS)
            self.fps = native if native and native > 0 else 15.0
        if self.start_s:
            self._capture.set(cv2.CAP_PROP_POS_MSEC, self.start_s * 1000.0)
        while self._capture is not None:
            ok, frame = self._capture.read()
            if not ok:
                break
            yield frame

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        source = self._folder_frames() if self.path.is_dir() else self._video_frames()
        fps = self.fps or 15.0
        began = time.monotonic()
        delivered = 0
        for index, frame in enumerate(source):
            if self.max_frames is not None and index >= self.max_frames:
                break
            fps = self.fps or fps
            timestamp = index / fps
            if self.realtime:
                delay = began + timestamp - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            delivered += 1
            yield timestamp, frame
        self.close()
        if delivered == 0 and self.max_frames != 0:  # nothing readable is a broken source, not an empty scene
            after = f" after {self.start_s:g} s" if self.start_s else ""
            raise CameraError(f"{self.path} gave no readable frame{after}", code="camera_unavailable")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class OpenCVSource(Closing):
    """A V4L2 / USB camera through OpenCV at the requested size and rate.

    Timestamps are the V4L2 buffer times that OpenCV reports as ``CAP_PROP_POS_MSEC`` when the backend
    gives them (so dropped frames leave gaps), else the monotonic clock at return. A video *file* opened this
    way plays like a camera: paced to its frame rate (a recorded camera for a kiosk, or for the camera tests).
    """

    def __init__(self, device: int | str = 0, *, width: int = 640, height: int = 480, fps: float = 30.0,
                 rotation: int = 0, hflip: bool = False, vflip: bool = False) -> None:
        self._capture: cv2.VideoCapture | None = cv2.VideoCapture(device)
        if not self._capture.isOpened():
            self._capture.release()
            self._capture = None
            raise CameraError(f"cannot open camera {device!r}", code="camera_unavailable")
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self._flip = _flip_code(rotation, hflip, vflip)
        is_file = isinstance(device, str) and Path(device).is_file()
        native = self._capture.get(cv2.CAP_PROP_FPS) if is_file else 0.0
        self._pace_s = 1.0 / native if native and native > 0 else 0.0

    def frames(self) -> Iterator[TimedFrame]:
        last: float | None = None
        clock_base: float | None = None  # set once the backend's times stop increasing: the clock takes over
        began = time.monotonic()
        count = 0
        while self._capture is not None:
            if self._pace_s:
                delay = began + count * self._pace_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                count += 1
            ok, frame = self._capture.read()
            if not ok:
                raise CameraError("camera stopped delivering frames", code="camera_failed")
            sensor_s = self._capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if clock_base is None and sensor_s >= 0 and (last is None or sensor_s > last):
                stamp = sensor_s
            else:
                if clock_base is None:
                    clock_base = time.monotonic() - (last or 0.0) - 1.0 / 30.0
                stamp = time.monotonic() - clock_base
            last = stamp
            yield stamp, frame if self._flip is None else cv2.flip(frame, self._flip)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _flip_code(rotation: int, hflip: bool, vflip: bool) -> int | None:
    """cv2.flip code for a mounting: rotation 180 is both flips; None when the image is used as is."""
    if rotation == 180:
        hflip, vflip = not hflip, not vflip
    if hflip and vflip:
        return -1
    if hflip:
        return 1
    if vflip:
        return 0
    return None


def open_source(spec: str, **kwargs: object) -> FrameSource:
    """``replay:PATH``, ``v4l2:INDEX|PATH`` or ``picamera2``; a bare path means replay.

    ``kwargs`` go to the source: size, rate and mounting for cameras, pacing for replays.
    """
    if spec.startswith("v4l2:"):
        target = spec[5:]
        return OpenCVSource(int(target) if target.isdigit() else target, **kwargs)  # type: ignore[arg-type]
    if spec == "picamera2":
        from edge.camera.picam import PiCamera2Source

        return PiCamera2Source(**kwargs)  # type: ignore[arg-type]
    path = spec[7:] if spec.startswith("replay:") else spec
    return ReplaySource(path, **kwargs)  # type: ignore[arg-type]
