"""The camera owner: one open camera, a ring of fresh frames, timeouts, stall detection and reopening.

The source here is a small camera of the test's own (frames of real video, with a switch that stops or
breaks delivery as an unplugged or stalled camera would); the owner under test is the real LiveFeed.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.camera.feed import LiveFeed, ReplayFeed
from edge.camera.sources import ReplaySource
from edge.errors import CameraError


class StubbornCamera:
    """Delivers numbered frames at ``fps`` while ``flowing`` is set; blocks (a stall) while it is clear.
    ``fail_opens`` makes the next N opens fail like a camera that is not plugged in."""

    def __init__(self, fps: float = 50.0) -> None:
        self.fps = fps
        self.flowing = threading.Event()
        self.flowing.set()
        self.fail_opens = 0
        self.opens = 0
        self.closes = 0
        self.frame_no = 0

    def open(self):
        self.opens += 1
        if self.fail_opens > 0:
            self.fail_opens -= 1
            raise CameraError("no camera", code="camera_unavailable")
        camera = self

        class Source:
            closed = False

            def frames(self):
                while not self.closed:
                    camera.flowing.wait()
                    time.sleep(1.0 / camera.fps)
                    camera.frame_no += 1
                    yield camera.frame_no / camera.fps, np.full((4, 4, 3), camera.frame_no % 256, np.uint8)

            def close(self):
                self.closed = True
                camera.closes += 1

        return Source()


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_one_open_for_many_sessions_and_only_fresh_frames():
    camera = StubbornCamera()
    feed = LiveFeed(camera.open, buffer_frames=4, frame_timeout_s=1.0, stall_s=0.5)
    feed.start()
    try:
        assert feed.wait_ready(5)
        for _ in range(3):
            began = camera.frame_no
            with feed.session() as frames:
                got = [next(frames) for _ in range(5)]
            assert all(int(f[0, 0, 0]) > began % 256 or began > 250 for _, f in got)  # nothing from before
            stamps = [t for t, _ in got]
            assert stamps == sorted(stamps)
        assert camera.opens == 1  # exposure and white balance settle once, not per session
        assert feed.status().ok
    finally:
        feed.close()
    assert camera.closes == 1


def test_a_stall_turns_status_down_and_times_out_the_session_then_recovers():
    camera = StubbornCamera()
    feed = LiveFeed(camera.open, frame_timeout_s=0.3, stall_s=0.4)
    feed.start()
    try:
        assert feed.wait_ready(5)
        camera.flowing.clear()
        wait_for(lambda: not feed.status().ok, 3.0)
        began = time.monotonic()
        with pytest.raises(CameraError) as e, feed.session(deadline=time.monotonic() + 10) as frames:
            next(frames)
        assert e.value.code == "camera_stalled" and time.monotonic() - began < 1.0
        camera.flowing.set()
        wait_for(lambda: feed.status().ok, 3.0)
    finally:
        camera.flowing.set()
        feed.close()


def test_a_session_wait_never_outlives_its_deadline():
    camera = StubbornCamera()
    camera.flowing.clear()
    feed = LiveFeed(camera.open, frame_timeout_s=5.0, stall_s=1.0)
    feed.start()
    try:
        began = time.monotonic()
        with pytest.raises(CameraError), feed.session(deadline=time.monotonic() + 0.2) as frames:
            next(frames)
        assert time.monotonic() - began < 1.0
    finally:
        camera.flowing.set()
        feed.close()


def test_an_absent_camera_is_reopened_with_back_off_until_it_appears():
    camera = StubbornCamera()
    camera.fail_opens = 3
    feed = LiveFeed(camera.open, reopen_min_s=0.05, reopen_max_s=0.2, stall_s=0.5)
    feed.start()
    try:
        assert feed.status().frames == 0
        assert feed.wait_ready(5)
        wait_for(lambda: feed.status().ok)
        assert camera.opens == 4 and feed.status().reopens >= 3
    finally:
        feed.close()


def test_a_broken_stream_is_closed_and_reopened():
    camera = StubbornCamera()
    feed = LiveFeed(camera.open, reopen_min_s=0.05, stall_s=0.5)
    feed.start()
    try:
        assert feed.wait_ready(5)
        source_count = camera.opens
        feed._source.close()  # the driver drops the device under us: the stream ends
        wait_for(lambda: camera.opens > source_count)
        wait_for(lambda: feed.status().ok)
    finally:
        feed.close()


def test_replay_feed_plays_the_recording_from_its_start_each_session(tmp_path):
    import cv2

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 8, 3), i * 60, np.uint8))
    feed = ReplayFeed(lambda: ReplaySource(tmp_path, fps=10))
    for _ in range(2):
        with feed.session() as frames:
            assert [int(f[0, 0, 0]) for _, f in frames] == [0, 60, 120]
    assert feed.status().ok


def test_a_session_slower_than_the_camera_gets_the_newest_frame_not_a_backlog():
    """On a Pi 4 a frame's face detection can take longer than the camera's frame interval. Working through
    the ring's backlog put the session up to two rings of frames (here 15, 0.3 s) behind the person: the
    challenge prompt came that late and the answer window closed on frames from before the turn ended."""
    camera = StubbornCamera(fps=50.0)
    feed = LiveFeed(camera.open, buffer_frames=8, frame_timeout_s=1.0, stall_s=0.5)
    feed.start()
    try:
        assert feed.wait_ready(5)
        behind = []
        with feed.session() as frames:
            for _ in range(8):
                stamp, _frame = next(frames)
                behind.append(camera.frame_no - round(stamp * camera.fps))  # frames captured since this one
                time.sleep(0.1)  # the session's work on the frame: five camera frames long
        assert max(behind) <= 2, behind
        stamps_seen = feed.status().frames
        assert stamps_seen >= 30  # the camera kept its pace meanwhile
    finally:
        feed.close()
