"""Is the device clock trustworthy enough to sign tokens?

Boards without an RTC boot in 1970 and only learn the time from the network. Two checks, both
configurable: the clock must be past a floor (the release date of this build: no token can honestly be
older), and, where the board runs systemd-timesyncd, the kernel must report the clock synchronised
(``/run/systemd/timesync/synchronized`` exists once a sync happened).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import SecurityError

#: 2026-01-01T00:00:00Z
DEFAULT_FLOOR = 1_767_225_600
SYNC_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass
class ClockGuard:
    floor: int = DEFAULT_FLOOR
    require_sync_flag: bool = False
    sync_flag: Path = SYNC_FLAG
    clock: Callable[[], float] = time.time

    def trusted(self) -> tuple[bool, str]:
        now = self.clock()
        if now < self.floor:
            return False, f"clock reads {int(now)}, before this build's floor {self.floor}: not synced"
        if self.require_sync_flag and not self.sync_flag.exists():
            return False, f"clock not synchronised ({self.sync_flag} absent)"
        return True, "ok"

    def now(self) -> float:
        """The current time, or SecurityError(clock_untrusted) when it must not be used for tokens."""
        ok, why = self.trusted()
        if not ok:
            raise SecurityError(why, code="clock_untrusted")
        return self.clock()
