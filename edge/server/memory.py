"""Handing memory the daemon no longer uses back to the board (Linux with glibc; no-ops elsewhere).

Two kinds, both measured by bench/daemon_memory.py:

- freed heap: model loading, JIT and each session's frames leave freed malloc pages behind; glibc's
  ``malloc_trim(0)`` returns them.
- code of a library that is done: LLVM (libllvmlite, ~70 MB resident after warm-up) is only needed to
  compile or load Numba kernels, which the daemon does once, at warm-up. Its pages are clean copies of the
  file. ``madvise(MADV_DONTNEED)`` on those read-only, never-written mappings drops them from the process;
  if LLVM is ever needed again (a kernel called with a new type), the kernel faults them back in from the
  file, unchanged. Mappings holding any private (copy-on-write) page are left alone: dropping them would
  lose relocations.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MADV_DONTNEED = 4
#: Libraries used only while kernels are compiled or loaded from the cache.
COMPILER_LIBRARIES = ("libllvmlite",)
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def _malloc_trim() -> Callable[[], None]:
    """glibc's malloc_trim(0): hand freed heap pages back to the system."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return lambda: None

    def release() -> None:
        trim(0)

    return release


release_free_memory = _malloc_trim()


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str
    path: str
    rss_kb: int
    anonymous_kb: int


def mappings(pid: int | str = "self") -> list[Mapping]:
    """The process's mappings from /proc/PID/smaps (empty where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            lines = smaps.read().splitlines()
    except OSError:
        return []
    rows: list[dict[str, Any]] = []
    for line in lines:
        header = _HEADER.match(line)
        if header:
            rows.append({"start": int(header[1], 16), "end": int(header[2], 16), "perms": header[3],
                         "path": header[4], "rss_kb": 0, "anonymous_kb": 0})
        elif rows and line.startswith(("Rss:", "Anonymous:")):
            rows[-1]["rss_kb" if line.startswith("Rss:") else "anonymous_kb"] = int(line.split()[1])
    return [Mapping(**row) for row in rows]


def resident_kb(library: str, pid: int | str = "self") -> int:
    """Resident kB of every mapping of the named library (file name starting with ``library``)."""
    return sum(m.rss_kb for m in mappings(pid) if os.path.basename(m.path).startswith(library))


def drop_library_pages(libraries: tuple[str, ...] = COMPILER_LIBRARIES) -> int:
    """Drop the resident pages of the named libraries' read-only, unmodified mappings; returns kB dropped."""
    libc = _libc()
    madvise = getattr(libc, "madvise", None)
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dropped = 0
    for m in mappings():
        if not os.path.basename(m.path).startswith(libraries) or "w" in m.perms or m.anonymous_kb or not m.rss_kb:
            continue
        if madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            dropped += m.rss_kb
        else:
            log.warning("madvise failed", extra={"fields": {"path": m.path, "errno": ctypes.get_errno()}})
    return dropped
