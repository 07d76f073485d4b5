"""The camera's owner: opened once at daemon start, streaming for as long as the daemon lives.

A gate camera that is opened per session re-settles exposure and white balance every time and can be
left half-open by a failed start. ``LiveFeed`` instead runs one thread that opens the source, keeps the
newest ``buffer_frames`` frames in a ring, and reopens the source with exponential back-off when it fails
or ends. Sessions read frames captured after they began, always the newest (a session slower than the
camera skips frames rather than falling behind the person); every wait has a timeout. ``status()`` says
whether frames are flowing (health turns NOT_SERVING when they stop).

``ReplayFeed`` is for recordings (tests, demos, evaluation): a recording is one presentation, so each
session plays it from its start.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from edge.camera.base import FrameSource, TimedFrame
from edge.errors import CameraError, EdgeError

log = logging.getLogger(__name__)

SourceOpener = Callable[[], FrameSource]


@dataclass(frozen=True)
class CameraStatus:
    ok: bool
    reason: str
    frames: int = 0  # frames received since the feed started
    reopens: int = 0  # times the source was (re)opened after a failure
    skipped: int = 0  # frames sessions passed over, busy with an earlier one (the board is slower than the camera)


class CameraFeed(Protocol):
    def start(self) -> None: ...

    def session(self, deadline: float | None = None) -> AbstractContextManager[Iterator[TimedFrame]]:
        """Frames for one session, captured after it began; a wait past ``deadline`` (monotonic) or the
        feed's frame timeout raises CameraError(camera_stalled)."""
        ...

    def status(self) -> CameraStatus: ...

    def close(self) -> None: ...


class ReplayFeed:
    """Each session opens the recording afresh (it is one presentation from its first frame)."""

    def __init__(self, opener: SourceOpener) -> None:
        self._opener = opener

    def start(self) -> None:
        pass

    @contextmanager
    def session(self, deadline: float | None = None) -> Iterator[Iterator[TimedFrame]]:
        source = self._opener()
        try:
            yield iter(source.frames())
        finally:
            source.close()

    def status(self) -> CameraStatus:
        return CameraStatus(True, "replay")

    def close(self) -> None:
        pass


class LiveFeed:
    """One owner thread per camera. ``stall_s``: no frame for this long means the camera is down."""

    def __init__(self, opener: SourceOpener, *, buffer_frames: int = 8, frame_timeout_s: float = 2.0,
                 stall_s: float = 3.0, reopen_min_s: float = 0.5, reopen_max_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._opener = opener
        self._ring: collections.deque[tuple[int, TimedFrame]] = collections.deque(maxlen=buffer_frames)
        self._cond = threading.Condition()
        self._seq = 0
        self._last_frame_at: float | None = None
        self._error = "not started"
        self._reopens = 0
        self._skipped = 0  # frames a session passed over because it was busy with an earlier one
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._source: FrameSource | None = None
        self.frame_timeout_s = frame_timeout_s
        self.stall_s = stall_s
        self.reopen_min_s = reopen_min_s
        self.reopen_max_s = reopen_max_s
        self._clock = clock

    # -- the owner thread -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="edge-camera", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.reopen_min_s
        while not self._stop.is_set():
            try:
                self._source = self._opener()
                self._pump(self._source)
                if not self._stop.is_set():
                    raise CameraError("the camera stream ended", code="camera_failed")
            except EdgeError as exc:
                self._failed(exc.message)
            except Exception as exc:  # a driver error we did not anticipate: still keep the owner alive
                log.exception("camera owner error")
                self._failed(f"camera error: {type(exc).__name__}")
            finally:
                self._release()
            if self._last_frame_at is not None and self._clock() - self._last_frame_at < self.stall_s:
                delay = self.reopen_min_s  # it was working until just now
            self._stop.wait(delay)
            delay = min(self.reopen_max_s, delay * 2)
            self._reopens += 1

    def _pump(self, source: FrameSource) -> None:
        for stamp, frame in source.frames():
            with self._cond:
                self._seq += 1
                self._ring.append((self._seq, (stamp, frame)))
                self._last_frame_at = self._clock()
                self._error = ""
                self._cond.notify_all()
            if self._stop.is_set():
                return

    def _failed(self, message: str) -> None:
        with self._cond:
            self._error = message
            self._cond.notify_all()
        log.warning("camera down; reopening", extra={"fields": {"error": message, "reopens": self._reopens}})

    def _release(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            try:
                source.close()
            except Exception:
                log.exception("closing the camera failed")

    # -- sessions ---------------------------------------------------------------------------------
    def status(self) -> CameraStatus:
        with self._cond:
            last, error = self._last_frame_at, self._error
        if last is None:
            return CameraStatus(False, error or "no frame yet", self._seq, self._reopens, self._skipped)
        age = self._clock() - last
        if age > self.stall_s:
            return CameraStatus(False, error or f"no frame for {age:.1f} s", self._seq, self._reopens, self._skipped)
        return CameraStatus(True, "frames flowing", self._seq, self._reopens, self._skipped)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the first frame arrived (start-up), at most ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._last_frame_at is not None, timeout)

    @contextmanager
    def session(self, deadline: float | None = None) -> Iterator[Iterator[TimedFrame]]:
        with self._cond:
            after = self._seq
        yield self._frames_after(after, deadline)

    def _newer_than(self, seq: int) -> Callable[[], bool]:
        return lambda: self._seq > seq or self._stop.is_set()

    def _frames_after(self, seq: int, deadline: float | None) -> Iterator[TimedFrame]:
        while True:
            with self._cond:
                limit = self.frame_timeout_s
                if deadline is not None:
                    limit = min(limit, max(0.0, deadline - time.monotonic()))
                if not self._cond.wait_for(self._newer_than(seq), limit):
                    raise CameraError(f"no camera frame within {limit:.1f} s ({self._error or 'stalled'})",
                                      code="camera_stalled")
                if self._stop.is_set():
                    return
                number, timed = self._ring[-1]
                self._skipped += number - seq - 1
            # Only the newest frame: a session slower than the camera (YuNet alone takes 6 ms a 640x480 frame
            # here, several times that on a Pi 4, against 33 ms between frames) would otherwise work through
            # the backlog, up to two rings of frames behind the person: a challenge's prompt came that late
            # and its answer window closed early. The frames passed over show as gaps in the timestamps.
            seq = number
            yield timed

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(self.frame_timeout_s + 2.0)
            self._thread = None
        self._release()
