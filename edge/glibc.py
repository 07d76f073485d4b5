"""The two glibc allocator calls edge makes (Linux with glibc; harmless no-ops elsewhere).

- ``release_free_memory``: ``malloc_trim(0)`` hands freed heap pages back to the system (the daemon after
  warm-up and after each session, edge/server/memory.py).
- ``limit_malloc_arenas``: ``mallopt(M_ARENA_MAX, n)``. glibc gives threads heaps ("arenas") of their own,
  up to eight per core, and a heap keeps the freed buffers of the largest image its thread decoded; the
  daemon's unit sets ``MALLOC_ARENA_MAX=1``, and a batch command that embeds images on several threads
  limits itself to one heap (edge/vision/batch.py).
"""

from __future__ import annotations

import ctypes
import functools

M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def libc() -> ctypes.CDLL | None:
    """The C library this process already has loaded (``dlopen(NULL)``), looked up once: no search for the
    file (``ctypes.util.find_library`` runs ``ldconfig``, ~3 ms a call), nothing at import."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def release_free_memory() -> None:
    """``malloc_trim(0)``; nothing where the C library has no such call."""
    trim = getattr(libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)


def limit_malloc_arenas(count: int) -> bool:
    """Threads that allocate from now on share at most ``count`` heaps; False where glibc is not there."""
    mallopt = getattr(libc(), "mallopt", None)
    return bool(mallopt is not None and mallopt(M_ARENA_MAX, count) == 1)
