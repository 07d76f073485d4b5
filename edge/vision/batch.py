"""Embedding many images at once, for the commands that compare or calibrate on a folder of photographs.

onnxruntime's intra-op threads do little for models this small at batch size one (SFace: 8 ms on two
threads against 11 ms on one), and decoding a JPEG is single-threaded anyway. Running one image per core,
each model call on one thread, keeps every core busy instead: 25 → 15 ms per image here on two cores
(bench/README.md, per-image cost). onnxruntime sessions and the OpenCV calls release the GIL and are safe to
call from several threads, and the face stage keeps no state between calls.

Each thread would get a glibc heap of its own, holding on to the freed buffers of the largest photograph it
decoded: 2 workers over 72 photographs peaked at 301 MB against 216 MB for one. So with several workers the
process is first limited to one heap (``mallopt(M_ARENA_MAX, 1)``): 240 MB, at the same speed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from edge.errors import EdgeError
from edge.glibc import limit_malloc_arenas
from edge.vision.types import FaceEmbedding

Item = TypeVar("Item")


def _capture(embed: Callable[[Item], FaceEmbedding], item: Item) -> FaceEmbedding | EdgeError:
    try:
        return embed(item)
    except EdgeError as exc:  # one image's problem is that image's result, never the batch's
        return exc


def embed_concurrently(embed: Callable[[Item], FaceEmbedding], items: Iterable[Item], *,
                       workers: int) -> Iterator[tuple[Item, FaceEmbedding | EdgeError]]:
    """Yield ``(item, embedding or the EdgeError it raised)`` in the order of ``items``, with up to
    ``workers`` embeddings running at once and at most ``2 * workers`` results held ahead of the reader
    (so a long pairs file streams, and memory stays a few images). Any other exception is a bug and
    propagates. ``workers`` 1 runs inline, with no thread; more limit the process to one glibc heap (above)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers == 1:
        for item in items:
            yield item, _capture(embed, item)
        return
    limit_malloc_arenas(1)
    with ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
        pending: deque[tuple[Item, Future[FaceEmbedding | EdgeError]]] = deque()
        for item in items:
            pending.append((item, pool.submit(_capture, embed, item)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
