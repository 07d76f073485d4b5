"""Is the device clock trustworthy enough to sign tokens?

Boards without an RTC boot in 1970 and only learn the time from the network. Two checks, both
configurable: the clock must be past a floor (the release date of this build: no token can honestly be
older), and, with ``require_sync``, the kernel must say the clock is synchronised. Whatever keeps the time
(systemd-timesyncd, chrony, ntpd) tells the kernel through adjtimex(2), so we ask the kernel the same way
systemd's ``timedatectl`` does: ``adjtimex`` with no modes, synchronised when it does not return
TIME_ERROR and the estimated maximum error is below 16 s (the kernel's ceiling, meaning "unknown").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.errors import SecurityError

#: 2026-01-01T00:00:00Z
DEFAULT_FLOOR = 1_767_225_600
TIME_ERROR = 5
#: NTP_PHASE_MAX in the kernel: maxerror saturates here (microseconds) when nobody disciplines the clock.
MAX_ERROR_UNSYNCED_US = 16_000_000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h> (glibc layout, same field types on 32- and 64-bit Linux)."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
                ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
                ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
                ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


@dataclass(frozen=True)
class KernelClock:
    """What adjtimex(2) reports: the clock state and the estimated maximum error (microseconds)."""

    state: int
    maxerror_us: int

    @property
    def synchronised(self) -> bool:
        return self.state != TIME_ERROR and self.maxerror_us < MAX_ERROR_UNSYNCED_US


def read_kernel_clock() -> KernelClock | None:
    """Ask the kernel (read-only: modes = 0, allowed without privileges); None where there is no adjtimex."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        adjtimex = libc.adjtimex
    except (OSError, AttributeError):
        return None
    timex = _Timex()
    state = adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return KernelClock(state, int(timex.maxerror))


@dataclass
class ClockGuard:
    floor: int = DEFAULT_FLOOR
    require_sync: bool = False
    clock: Callable[[], float] = time.time
    kernel: Callable[[], KernelClock | None] = field(default=read_kernel_clock)

    def trusted(self) -> tuple[bool, str]:
        now = self.clock()
        if now < self.floor:
            return False, f"clock reads {int(now)}, before this build's floor {self.floor}: not synced"
        if self.require_sync:
            state = self.kernel()
            if state is None:
                return False, "cannot ask the kernel whether the clock is synchronised (adjtimex unavailable)"
            if not state.synchronised:
                return False, (f"the kernel reports the clock unsynchronised (state {state.state}, max error "
                               f"{state.maxerror_us / 1e6:.1f} s): is timesyncd, chrony or ntpd running?")
        return True, "ok"

    def now(self) -> float:
        """The current time, or SecurityError(clock_untrusted) when it must not be used for tokens."""
        ok, why = self.trusted()
        if not ok:
            raise SecurityError(why, code="clock_untrusted")
        return self.clock()
