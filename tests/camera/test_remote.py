"""The camera in a helper process, frames through shared memory (how the Pi runs apt's picamera2).

Here the helper runs on this venv's Python with a V4L2-path source opened on a video file (OpenCV opens a
file the way it opens /dev/videoN, paced like a camera); on a Pi it is /usr/bin/python3 with picamera2.
The helper, the pipe, the shared memory and the process lifetimes are the real ones.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edge.camera.remote import HelperSource
from edge.camera.sources import OpenCVSource
from edge.errors import CameraError

pytestmark = pytest.mark.slow


@pytest.fixture
def clip(testdata) -> str:
    return str(testdata / "video" / "short_hamilton_clip.mp4")


def shm_names() -> set[str]:
    return {p.name for p in Path("/dev/shm").iterdir()}


def test_frames_cross_the_process_boundary_unchanged(clip):
    direct = OpenCVSource(clip, width=640, height=360)
    direct._pace_s = 0.0
    with direct:
        reference = [f.tobytes() for _, (_, f) in zip(range(60), direct.frames(), strict=False)]
    with HelperSource(f"v4l2:{clip}", python=sys.executable, width=640, height=360) as helper:
        got = []
        for t, frame in helper.frames():
            got.append((t, frame))
            if len(got) == 5:
                break
    # The helper may skip frames a slow reader missed (as a camera's own buffer would); the ones it delivers
    # are bit-exact, in order, with the stream's own times.
    indices = [reference.index(frame.tobytes()) for _, frame in got]
    assert indices == sorted(set(indices))
    stamps = [t for t, _ in got]
    assert stamps == sorted(stamps)
    assert stamps[-1] - stamps[0] == pytest.approx((indices[-1] - indices[0]) / 29.97, abs=0.002)


def test_a_stalled_helper_is_a_timeout_and_close_frees_everything(clip):
    before = shm_names()
    source = HelperSource(f"v4l2:{clip}", python=sys.executable, width=640, height=360, frame_timeout_s=0.5)
    frames = source.frames()
    next(frames)
    pid = source._proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        with pytest.raises(CameraError) as e:
            for _ in range(100):  # drain what was announced before the stop
                next(frames)
        assert e.value.code == "camera_stalled" and time.monotonic() - began < 2.0
    finally:
        os.kill(pid, signal.SIGCONT)
        source.close()
    assert shm_names() <= before  # the ring is unlinked
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_helper_that_cannot_open_the_camera_says_why():
    with HelperSource("v4l2:/dev/video-that-does-not-exist", python=sys.executable) as source, \
            pytest.raises(CameraError) as e:
        next(iter(source.frames()))
    assert e.value.code == "camera_failed" and "cannot open camera" in e.value.message


def test_a_missing_interpreter_is_typed():
    with pytest.raises(CameraError) as e:
        HelperSource("picamera2", python="/nonexistent/python3")
    assert e.value.code == "camera_unavailable"


def test_the_ring_detects_a_slot_overwritten_during_a_copy():
    from edge.camera.ring import FrameRing, TornRead

    ring = FrameRing.create(4, 2, slots=2)
    try:
        ring.write(1, 0.5, np.full((2, 4, 3), 1, np.uint8))
        assert ring.read(1)[0] == 0.5
        ring.write(3, 1.5, np.full((2, 4, 3), 3, np.uint8))  # same slot as 1: the writer lapped the reader
        with pytest.raises(TornRead):
            ring.read(1)
        with pytest.raises(ValueError):
            ring.write(4, 2.0, np.zeros((3, 4, 3), np.uint8))
    finally:
        ring.close()
