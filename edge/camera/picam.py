"""Raspberry Pi camera through picamera2, imported only when this source is constructed.

picamera2 and its ``libcamera`` bindings come from Raspberry Pi OS (apt ``python3-picamera2``), not from
PyPI: ``scripts/setup.sh --pi`` builds the venv with ``--system-site-packages`` so they are importable
(README, "Raspberry Pi"). "RGB888" is B, G, R bytes per pixel in memory, which is the BGR the rest of the
pipeline expects, so a frame is used without a colour conversion.

Every capture waits at most ``frame_timeout_s`` (picamera2 raises ``TimeoutError`` then, and the waiting job
is cancelled so that it cannot block ``stop`` or swallow a later frame); each request is released back to
libcamera in a ``finally``; the frame time is the request's ``SensorTimestamp`` (ns, start
of readout), so dropped frames are visible as gaps. If ``configure`` or ``start`` fails, the camera is
closed before the error is raised, so a failed start never keeps the device busy.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from edge.camera.base import Closing, TimedFrame
from edge.errors import CameraError

log = logging.getLogger(__name__)

PI_HINT = ("picamera2 is not importable from this Python: on Raspberry Pi OS install it with "
           "`sudo apt install python3-picamera2` and build the venv with `./scripts/setup.sh --pi` "
           "(it needs --system-site-packages to see apt's libcamera bindings)")


class PiCamera2Source(Closing):
    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0, camera_num: int = 0,
                 rotation: int = 0, hflip: bool = False, vflip: bool = False,
                 controls: Mapping[str, Any] | None = None, frame_timeout_s: float = 1.0,
                 buffer_count: int = 4, module: Any = None, allocator: Any = None) -> None:
        """``controls`` are libcamera controls by name (``AeExposureMode``, ``AfMode``, ...), applied at
        start; ``fps`` becomes ``FrameDurationLimits``; ``rotation`` 180 is both flips (libcamera's
        Transform cannot rotate by 90 without a transpose the ISP does not offer). ``allocator`` replaces
        picamera2's default DMA-heap allocator (which needs /dev/dma_heap: a Pi has it, a test machine not)."""
        if rotation not in (0, 180):
            raise CameraError(f"camera rotation {rotation} is not supported (0 or 180)", code="camera_unavailable")
        if module is None:
            try:
                import picamera2 as module  # type: ignore[no-redef]
            except ImportError as exc:
                raise CameraError(PI_HINT, code="camera_unavailable") from exc
        self.frame_timeout_s = frame_timeout_s
        self._camera: Any = None
        try:
            bindings: Any = getattr(module, "libcamera", None)  # picamera2 re-exports what it imported
            if bindings is None:
                bindings = importlib.import_module("libcamera")

            self._camera = module.Picamera2(camera_num) if allocator is None else \
                module.Picamera2(camera_num, allocator=allocator)
            if rotation == 180:
                hflip, vflip = not hflip, not vflip
            frame_us = int(round(1e6 / fps))
            wanted = {"FrameDurationLimits": (frame_us, frame_us), **dict(controls or {})}
            # One profile serves several camera modules: apply what this one advertises (AfMode exists on
            # Camera Module 3 only) and say what was left out, rather than failing to start.
            advertised = getattr(self._camera, "camera_controls", None)
            if advertised is not None:
                skipped = sorted(set(wanted) - set(advertised))
                if skipped:
                    log.warning("camera controls not supported by this camera", extra={"fields": {
                        "skipped": skipped}})
                wanted = {k: v for k, v in wanted.items() if k in advertised}
            config = self._camera.create_video_configuration(
                main={"size": (width, height), "format": "RGB888"}, transform=bindings.Transform(
                    hflip=int(hflip), vflip=int(vflip)), buffer_count=buffer_count, controls=wanted)
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:  # libcamera raises RuntimeError and friends; IndexError when no camera
            self.close()
            raise CameraError(f"cannot start the Pi camera: {exc}", code="camera_unavailable") from exc

    def frames(self) -> Iterator[TimedFrame]:
        from concurrent.futures import TimeoutError as FutureTimeout

        while self._camera is not None:
            try:
                request = self._camera.capture_request(wait=self.frame_timeout_s)
            except FutureTimeout as exc:
                # The timed-out capture job stays queued in picamera2's event loop; left there, it would
                # swallow (and never release) a later request, and stop() would wait behind it forever.
                self._camera.cancel_all_and_flush()
                raise CameraError(f"the Pi camera delivered no frame within {self.frame_timeout_s} s",
                                  code="camera_stalled") from exc
            except Exception as exc:
                raise CameraError(f"Pi camera capture failed: {exc}", code="camera_failed") from exc
            try:
                stamp_ns = request.get_metadata().get("SensorTimestamp")
                frame = np.ascontiguousarray(request.make_array("main")[:, :, :3])
            finally:
                request.release()
            yield (stamp_ns / 1e9 if stamp_ns else time.monotonic()), frame

    def close(self) -> None:
        """Stop and release the camera. Never raises: the camera owner must always be able to reopen."""
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.cancel_all_and_flush()  # a job still waiting for a frame would block stop()
            camera.stop()
        except Exception:  # stopping a camera that never started; close anyway
            log.debug("picamera2 stop failed", exc_info=True)
        try:
            camera.close()
        except Exception as exc:
            log.warning("picamera2 close failed", extra={"fields": {"error": str(exc)}})
