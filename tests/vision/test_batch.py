"""Embedding several images at once: order, per-image errors, real concurrency, bounded look-ahead, and the
same vectors as one at a time."""

import threading

import numpy as np
import pytest

from edge.errors import EdgeError, NoFaceError
from edge.imageio import read_image_bytes
from edge.vision.batch import embed_concurrently
from edge.vision.types import FaceEmbedding


def _fake(item: int) -> FaceEmbedding:
    if item % 4 == 3:
        raise NoFaceError(f"no face in {item}")
    return FaceEmbedding(vector=np.full(4, float(item), dtype=np.float32), face=None, faces_found=1,
                         quality=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_in_order_and_an_image_error_stays_with_its_image(workers):
    results = list(embed_concurrently(_fake, range(10), workers=workers))
    assert [item for item, _ in results] == list(range(10))
    for item, result in results:
        if item % 4 == 3:
            assert isinstance(result, NoFaceError) and str(item) in result.message
        else:
            assert isinstance(result, FaceEmbedding) and result.vector[0] == item


def test_a_bug_is_not_mistaken_for_an_image_error():
    def broken(item: int) -> FaceEmbedding:
        raise KeyError(item)

    with pytest.raises(KeyError):
        list(embed_concurrently(broken, range(3), workers=2))


def test_two_workers_really_run_at_once():
    barrier = threading.Barrier(2, timeout=10)

    def meet(item: int) -> FaceEmbedding:
        barrier.wait()  # breaks (and raises) unless a second embedding runs at the same time
        return _fake(0)

    results = list(embed_concurrently(meet, range(4), workers=2))
    assert all(isinstance(r, FaceEmbedding) for _, r in results)
    with pytest.raises(ValueError):
        list(embed_concurrently(meet, range(1), workers=0))


def test_a_slow_reader_does_not_pull_the_whole_input():
    pulled = []

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    results = embed_concurrently(lambda i: _fake(0), items(), workers=2)
    next(results)
    assert len(pulled) <= 2 * 2 + 1
    results.close()


def test_concurrent_embeddings_equal_one_at_a_time(testdata, face_stage):
    paths = sorted(str(p) for p in (testdata / "faces" / "people").glob("*/*"))[:8]

    def embed(path: str) -> FaceEmbedding:
        return face_stage.embed_photograph(read_image_bytes(path), path)

    one = dict(embed_concurrently(embed, paths, workers=1))
    two = dict(embed_concurrently(embed, paths, workers=2))
    assert any(isinstance(v, FaceEmbedding) for v in one.values())
    for path in paths:
        if isinstance(one[path], EdgeError):
            assert type(two[path]) is type(one[path])
        else:
            np.testing.assert_allclose(one[path].vector, two[path].vector, atol=1e-5)


def test_several_workers_share_one_heap(monkeypatch):
    from edge import glibc
    from edge.vision import batch

    assert glibc.limit_malloc_arenas(8) is True  # this machine runs glibc: mallopt takes the setting
    calls = []
    monkeypatch.setattr(batch, "limit_malloc_arenas", calls.append)
    list(embed_concurrently(_fake, range(3), workers=1))
    assert calls == []
    list(embed_concurrently(_fake, range(3), workers=2))
    assert calls == [1]


def test_the_detector_keeps_an_arena_for_its_first_pass_only_and_the_vectors_do_not_move(testdata, face_stage):
    """Stages are built with the detector's arena on for its first pass only (faster YuNet, memory sized by
    that pass); the batch stage's vectors must equal the daemon-style stage's, and a stage without the arena
    must give the same vectors too."""
    from edge.assembly import build_face_stage
    from edge.config import load_config
    from edge.vision.face_stage import FaceStage

    batch = build_face_stage(load_config(), batch=True)
    for stage in (batch, face_stage):
        assert stage.detector.retry_backend is not stage.detector.backend
        assert stage.detector.backend._session.get_session_options().enable_cpu_mem_arena
    plain = FaceStage.from_models(None)
    assert plain.detector.retry_backend is plain.detector.backend
    assert not plain.detector.backend._session.get_session_options().enable_cpu_mem_arena
    paths = sorted(str(p) for p in (testdata / "faces" / "people").glob("*/*"))[:6]
    for path in paths:
        data = read_image_bytes(path)
        np.testing.assert_allclose(batch.embed_photograph(data, path).vector,
                                   face_stage.embed_photograph(data, path).vector, atol=1e-5)
        np.testing.assert_allclose(plain.embed_photograph(data, path).vector,
                                   face_stage.embed_photograph(data, path).vector, atol=1e-5)
    assert not batch.detector.retry_backend.built  # these portraits needed no retry: no session was built
    assert batch.detector.detect(np.zeros((1500, 2000, 3), np.uint8)) == []  # nothing at 640 px: the retry runs
    assert batch.detector.retry_backend.built
    assert not batch.detector.retry_backend._get()._session.get_session_options().enable_cpu_mem_arena


def test_a_lazy_backend_builds_one_session_however_many_threads_ask_first():
    from concurrent.futures import ThreadPoolExecutor

    from edge.modelstore import resolve_model
    from edge.vision.runtime import LazyBackend, OnnxBackend

    built = []

    def build() -> OnnxBackend:
        built.append(1)
        return OnnxBackend(resolve_model("yunet"), threads=1)

    lazy = LazyBackend(build)
    assert not lazy.built and built == []
    tensor = np.zeros((1, 3, 64, 64), np.float32)
    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(lambda _: lazy.run(tensor), range(8)))
    assert built == [1] and lazy.built and lazy.input_name
    assert all(len(o) == len(outputs[0]) for o in outputs)
