"""Handing memory the daemon no longer uses back to the board (Linux with glibc; no-ops elsewhere).

Two kinds, both measured by bench/daemon_memory.py:

- freed heap: model loading, JIT and each session's frames leave freed malloc pages behind; glibc's
  ``malloc_trim(0)`` returns them.
- library pages the steady state does not use: warm-up touches far more of the libraries' files than a
  session does (LLVM, ~70 MB, is only needed to compile or load the Numba kernels; import-time and
  initialisation code of OpenCV, onnxruntime, gRPC, NumPy). Those pages are clean copies of the files.
  ``madvise(MADV_DONTNEED)`` on every read-only, never-written file mapping drops them from the process;
  what a session then uses faults back in from the page cache (a minor fault: the pages are still there),
  unchanged, and the rest stays out. bench/daemon_memory.py: the file-backed part of RSS goes from 87 MB to
  32 MB once warm-up has run the stages again and settles at 50 MB, the working set. The memory the daemon
  owns (RssAnon) does not change: these pages are the ones the kernel would reclaim first under pressure
  anyway, and they stay in the page cache; dropping them makes RSS say what the daemon needs. Mappings
  holding any private (copy-on-write) page are left alone: dropping them would lose relocations.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from edge.glibc import libc

log = logging.getLogger(__name__)

MADV_DONTNEED = 4
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


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


def drop_library_pages(libraries: tuple[str, ...] | None = None) -> int:
    """Drop the resident pages of read-only, unmodified file mappings: of the libraries whose file names start
    with one of ``libraries``, or of every file when it is None. Device mappings (/dev: a camera's buffers,
    the camera helper's shared-memory ring) are never touched. Returns the kB dropped."""
    madvise = getattr(libc(), "madvise", None)
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    dropped = 0
    for m in mappings():
        named = os.path.basename(m.path).startswith(libraries) if libraries else m.path.startswith("/")
        if not named or m.path.startswith("/dev/") or "w" in m.perms or m.anonymous_kb or not m.rss_kb:
            continue
        if madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            dropped += m.rss_kb
        else:
            log.warning("madvise failed", extra={"fields": {"path": m.path, "errno": ctypes.get_errno()}})
    return dropped
