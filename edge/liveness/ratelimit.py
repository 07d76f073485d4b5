"""Rate-limit repeated failures at one gate.

Someone trying photo after photo, or card after card, gets a cool-down instead of unlimited attempts:
after ``max_failures`` failed sessions (DENY for liveness, challenge or face mismatch) within
``window_s``, new sessions are answered RETRY / RATE_LIMITED for ``cooldown_s``. Card problems and
failures to acquire do not count: they are not guesses at the face or liveness check.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    def __init__(self, *, max_failures: int = 5, window_s: float = 120.0, cooldown_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.clock = clock
        self._failures: deque[float] = deque()
        self._blocked_until = 0.0
        self._lock = threading.Lock()

    def blocked_for(self) -> float:
        """Seconds left in the cool-down (0 when sessions may run)."""
        with self._lock:
            return max(0.0, self._blocked_until - self.clock())

    def record(self, failed: bool) -> None:
        now = self.clock()
        with self._lock:
            if not failed:
                return
            self._failures.append(now)
            while self._failures and self._failures[0] < now - self.window_s:
                self._failures.popleft()
            if len(self._failures) >= self.max_failures:
                self._blocked_until = now + self.cooldown_s
                self._failures.clear()
