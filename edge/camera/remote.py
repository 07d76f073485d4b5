"""A frame source whose camera lives in a helper process (edge.camera.helper), frames via shared memory.

The source creates the ring, starts the helper with the configured interpreter, and yields the newest
announced frame each time (older announcements are skipped, as a camera's own buffer would drop them; the
sensor timestamps show the gap). Every wait for the helper has a timeout; a helper that exits or stalls is a
CameraError naming what it printed, and ``close`` terminates it and frees the memory.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edge.camera.base import Closing, TimedFrame
from edge.camera.ring import FrameRing, TornRead
from edge.errors import CameraError

#: The folder that holds the ``edge`` package: the helper imports edge.camera.* from here.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class HelperSource(Closing):
    def __init__(self, source: str, *, python: str, width: int = 640, height: int = 480, fps: float = 30.0,
                 rotation: int = 0, hflip: bool = False, vflip: bool = False,
                 controls: Mapping[str, Any] | None = None, frame_timeout_s: float = 2.0,
                 start_timeout_s: float = 15.0) -> None:
        self.frame_timeout_s = frame_timeout_s
        self.start_timeout_s = start_timeout_s
        self._ring: FrameRing | None = FrameRing.create(width, height)
        args = [python, "-m", "edge.camera.helper", "--ring", self._ring.name, "--source", source,
                "--width", str(width), "--height", str(height), "--fps", str(fps), "--rotation", str(rotation),
                "--controls", json.dumps(dict(controls or {})), "--frame-timeout-s", str(frame_timeout_s)]
        args += ["--hflip"] if hflip else []
        args += ["--vflip"] if vflip else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                           os.environ.get("PYTHONPATH")]))}
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            self.close()
            raise CameraError(f"cannot start the camera helper with {python}: {exc.strerror}",
                              code="camera_unavailable") from exc
        self._buffer = b""

    def _line(self, timeout: float) -> bytes | None:
        """The next announcement line, or None at EOF; CameraError(camera_stalled) after ``timeout``."""
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise CameraError(f"the camera helper sent no frame within {timeout:.1f} s", code="camera_stalled")
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _latest(self, timeout: float) -> int | None:
        """The newest announced sequence number (drains whatever is already waiting)."""
        line = self._line(timeout)
        if line is None:
            return None
        seq = int(line.split()[0])
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            seq = int(line.split()[0])
        return seq

    def frames(self) -> Iterator[TimedFrame]:
        first = True
        while self._proc is not None and self._ring is not None:
            seq = self._latest(self.start_timeout_s if first else self.frame_timeout_s)
            first = False
            if seq is None:
                raise CameraError(f"the camera helper exited: {self._stderr_tail()}", code="camera_failed")
            try:
                yield self._ring.read(seq)
            except TornRead:
                continue

    def _stderr_tail(self) -> str:
        if self._proc is None or self._proc.stderr is None:
            return ""
        try:
            self._proc.wait(2)
        except subprocess.TimeoutExpired:
            return "(still running)"
        return self._proc.stderr.read().decode(errors="replace").strip()[-300:] or f"exit {self._proc.returncode}"

    def close(self) -> None:
        proc, self._proc = getattr(self, "_proc", None), None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        ring, self._ring = self._ring, None
        if ring is not None:
            ring.close()
