"""Waiting for SIGTERM/SIGINT in a process whose other threads belong to grpc, onnxruntime and Numba.

The kernel delivers a process-directed signal to any thread that does not block it. When that is one of
the library threads, the main thread, parked in ``threading.Event.wait()``, is never interrupted and
Python's handler never runs: the daemon ignored SIGTERM about one time in ten under load (systemd would
then kill it after ``TimeoutStopSec`` with sessions cut off). Setting an ``Event`` from a handler can
also deadlock, since the handler may run while the main thread holds that event's lock.

So the C-level handler's wake-up fd is used instead: whichever thread takes the signal, Python writes
its number to a socket, and the main thread blocks reading that socket.
"""

from __future__ import annotations

import signal
import socket
import time
from types import FrameType, TracebackType
from typing import overload

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Installed before start-up, so a SIGTERM during start is not lost (it is read by ``wait``)."""

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._signals = {int(s) for s in signals}
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, self._noted) for s in signals}

    def _noted(self, signum: int, frame: FrameType | None) -> None:
        """The Python-level handler has nothing to do: the wake-up byte already carries the signal."""

    @overload
    def wait(self) -> signal.Signals: ...

    @overload
    def wait(self, timeout: float) -> signal.Signals | None: ...

    def wait(self, timeout: float | None = None) -> signal.Signals | None:
        """Block until one of the stop signals arrives and return it; None once ``timeout`` seconds passed
        without one (None: wait for good)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._reader.settimeout(None)  # a wait without a timeout after one with it blocks again
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._reader.settimeout(left)
            try:
                received = self._reader.recv(64)
            except TimeoutError:
                return None
            for number in received:
                if number in self._signals:
                    return signal.Signals(number)

    def close(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._reader.close()
        self._writer.close()

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
