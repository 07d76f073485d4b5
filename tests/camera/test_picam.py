"""The picamera2 adapter's own logic: lifetimes, timeouts, sensor timestamps, request release.

picamera2 needs libcamera and a camera, which this machine has not; these tests give the adapter a small
stand-in for the ``picamera2`` module that records what the adapter does with it (the adapter is the code
under test, not picamera2). tests/camera/test_picam_package.py drives the real picamera2 package.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout
from typing import ClassVar

import numpy as np
import pytest

from edge.camera.picam import PiCamera2Source
from edge.errors import CameraError


class _Request:
    def __init__(self, log, stamp_ns):
        self.log, self.stamp_ns = log, stamp_ns

    def get_metadata(self):
        return {"SensorTimestamp": self.stamp_ns, "ExposureTime": 10000}

    def make_array(self, name):
        assert name == "main"
        return np.full((480, 640, 4), 7, np.uint8)

    def release(self):
        self.log.append("release")


class _Transform:
    def __init__(self, hflip=0, vflip=0):
        self.hflip, self.vflip = hflip, vflip


class _Module:
    """Stands in for ``picamera2`` (with its ``libcamera`` attribute, as the real package re-exports it)."""

    def __init__(self, *, fail_on=None, stamps=(1_000_000_000, 1_033_333_333, 1_100_000_000), stall_after=None):
        self.log = []
        module = self
        self.libcamera = type("libcamera", (), {"Transform": _Transform})

        class Picamera2:
            camera_controls: ClassVar[dict] = {"FrameDurationLimits": (33333, 10**6, None),
                                               "AeMeteringMode": (0, 3, 0)}

            def __init__(self, num):
                module.log.append(("init", num))
                self.stamps = list(stamps)

            def create_video_configuration(self, main, transform, buffer_count, controls):
                module.log.append(("config", main["size"], main["format"], transform.hflip, transform.vflip,
                                   controls["FrameDurationLimits"]))
                module.log.append(("controls", sorted(controls)))
                return {"main": main}

            def configure(self, config):
                module.log.append("configure")
                if fail_on == "configure":
                    raise RuntimeError("Failed to configure camera")

            def start(self):
                module.log.append("start")

            def capture_request(self, wait):
                module.log.append(("capture", wait))
                if not self.stamps or (stall_after is not None and len(stamps) - len(self.stamps) >= stall_after):
                    raise FutureTimeout()
                return _Request(module.log, self.stamps.pop(0))

            def cancel_all_and_flush(self):
                module.log.append("cancel")

            def stop(self):
                module.log.append("stop")

            def close(self):
                module.log.append("close")

        self.Picamera2 = Picamera2


def test_frames_carry_sensor_timestamps_and_every_request_is_released():
    module = _Module()
    with PiCamera2Source(module=module, rotation=180, fps=30, frame_timeout_s=0.5) as source:
        frames = source.frames()
        got = [next(frames) for _ in range(3)]
    assert [t for t, _ in got] == pytest.approx([1.0, 1.033333333, 1.1])  # a dropped frame shows as a gap
    assert all(f.shape == (480, 640, 3) and f.flags["C_CONTIGUOUS"] for _, f in got)
    assert module.log.count("release") == 3
    assert ("config", (640, 480), "RGB888", 1, 1, (33333, 33333)) in module.log  # 180 degrees = both flips
    assert ("capture", 0.5) in module.log  # never an unbounded wait
    assert module.log[-3:] == ["cancel", "stop", "close"]


def test_controls_the_camera_does_not_advertise_are_left_out():
    module = _Module()
    with PiCamera2Source(module=module, controls={"AeMeteringMode": 0, "AfMode": 2}):
        pass
    assert ("controls", ["AeMeteringMode", "FrameDurationLimits"]) in module.log  # no AfMode on this module


def test_a_failed_configure_closes_the_camera():
    module = _Module(fail_on="configure")
    with pytest.raises(CameraError) as e:
        PiCamera2Source(module=module)
    assert e.value.code == "camera_unavailable"
    assert module.log[-3:] == ["cancel", "stop", "close"]  # the device is released, not leaked


def test_a_stalled_camera_is_a_typed_timeout():
    module = _Module(stall_after=1)
    with PiCamera2Source(module=module, frame_timeout_s=0.2) as source:
        frames = source.frames()
        next(frames)
        with pytest.raises(CameraError) as e:
            next(frames)
    assert e.value.code == "camera_stalled"


def test_unsupported_rotation_and_missing_package_are_typed():
    with pytest.raises(CameraError):
        PiCamera2Source(module=_Module(), rotation=90)
    with pytest.raises(CameraError) as e:
        PiCamera2Source()
    assert e.value.code == "camera_unavailable" and "setup.sh --pi" in e.value.message
