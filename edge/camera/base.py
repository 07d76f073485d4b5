"""The one protocol every frame source implements, and the context-manager mixin they share.

A source yields ``(timestamp seconds, BGR uint8 frame)``. Timestamps come from the sensor where the
driver reports one (picamera2 ``SensorTimestamp``, V4L2 buffer times through OpenCV), so a dropped frame
shows up as a gap that liveness can see; their origin is arbitrary (only differences are used).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Protocol

import numpy as np

TimedFrame = tuple[float, np.ndarray]


class FrameSource(Protocol):
    def frames(self) -> Iterator[TimedFrame]:
        """Yield (timestamp in seconds, BGR uint8 frame) until the source ends or is closed."""
        ...

    def close(self) -> None: ...


class Closing:
    """``with source:`` closes the source (releases the device) on the way out."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass
