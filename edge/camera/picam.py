"""Raspberry Pi camera through picamera2, imported only when this source is constructed (never in CI).

picamera2 delivers RGB888 as BGR in memory order ("RGB888" is B, G, R bytes per pixel), which is what the
rest of the pipeline expects. The camera is started in ``__init__`` and stopped and closed in ``close``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from edge.camera.sources import _Closing
from edge.errors import CameraError


class PiCamera2Source(_Closing):
    def __init__(self, *, width: int = 640, height: int = 480, camera_num: int = 0,
                 module: Any = None) -> None:
        if module is None:
            try:
                import picamera2 as module  # type: ignore[no-redef]
            except ImportError as exc:
                raise CameraError("picamera2 is not installed (Raspberry Pi OS: apt install python3-picamera2)",
                                  code="camera_unavailable") from exc
        try:
            self._camera = module.Picamera2(camera_num)
            config = self._camera.create_video_configuration(main={"size": (width, height), "format": "RGB888"})
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera raises RuntimeError and friends
            raise CameraError(f"cannot start the Pi camera: {exc}", code="camera_unavailable") from exc

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        start = time.monotonic()
        while self._camera is not None:
            try:
                frame = self._camera.capture_array("main")
            except Exception as exc:
                raise CameraError(f"Pi camera capture failed: {exc}", code="camera_failed") from exc
            yield time.monotonic() - start, np.ascontiguousarray(frame[:, :, :3])

    def close(self) -> None:
        if getattr(self, "_camera", None) is not None:
            try:
                self._camera.stop()
            finally:
                self._camera.close()
                self._camera = None
