"""Handing LLVM's pages back after warm-up (edge/server/memory.py): the kernels keep their results, LLVM
can still compile afterwards, and nothing written (relocations, copy-on-write data) is dropped.

Runs in a child process so the test process's own mappings are not touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json
    import numpy as np
    from numba import njit
    from edge.liveness import kernels
    from edge.server.memory import drop_library_pages, mappings, resident_kb

    rng = np.random.default_rng(3)
    grey = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    colour = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    magnitude = rng.random((32, 32)).astype(np.float32)

    def results():
        return [kernels.lbp_histogram(grey).tolist(), kernels.spectral_peak_ratio(magnitude, 0.3),
                kernels.glare_block_fraction(grey, 250, 2),
                np.asarray(kernels.straight_edge_profile(grey, 40)).tolist(),
                np.asarray(kernels.colour_stats(colour)).tolist()]

    kernels.warm_up()
    before = results()
    written = {(m.start, m.end): m.rss_kb for m in mappings()
               if "libllvmlite" in m.path and ("w" in m.perms or m.anonymous_kb)}
    resident_before = resident_kb("libllvmlite")
    dropped = drop_library_pages(("libllvmlite",))
    resident_after = resident_kb("libllvmlite")
    written_after = {(m.start, m.end): m.rss_kb for m in mappings() if (m.start, m.end) in written}
    after = results()

    @njit
    def compiled_after_the_drop(x):
        return (x * x).sum()

    print(json.dumps({"before": before, "after": after, "dropped_kb": dropped, "resident_before_kb": resident_before,
                      "resident_after_kb": resident_after, "written": sorted(written.values()),
                      "written_after": sorted(written_after.values()),
                      "new_kernel": float(compiled_after_the_drop(np.arange(5.0)))}))
""")


def test_llvm_pages_are_dropped_and_the_kernels_and_the_compiler_still_work(tmp_path):
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["resident_before_kb"] > 20_000  # LLVM is resident once kernels are compiled
    assert report["dropped_kb"] > report["resident_before_kb"] / 2
    assert report["resident_after_kb"] < report["resident_before_kb"] / 4
    assert report["after"] == report["before"]
    assert report["new_kernel"] == 30.0  # LLVM compiles again once its pages fault back in
    # relocated, copy-on-write mappings are untouched
    assert report["written"] and report["written_after"] == report["written"]


CHILD_ALL = textwrap.dedent("""
    import json
    import numpy as np
    from edge.assembly import build_face_stage
    from edge.config import load_config
    from edge.liveness import kernels
    from edge.server.memory import drop_library_pages, mappings

    def file_kb():
        return sum(m.rss_kb for m in mappings() if m.path.startswith("/"))

    stage = build_face_stage(load_config())
    stage.warm_up()
    kernels.warm_up()
    rng = np.random.default_rng(4)
    crop = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (64, 64), dtype=np.uint8)

    def results():
        return [stage.embedder.embed(crop).tolist(), len(stage.detector.detect(frame)),
                kernels.lbp_histogram(grey).tolist()]

    before = results()
    written = {(m.start, m.end): m.rss_kb for m in mappings() if m.path.startswith("/") and
               ("w" in m.perms or m.anonymous_kb)}
    resident_before = file_kb()
    dropped = drop_library_pages()
    resident_after = file_kb()
    written_after = {(m.start, m.end): m.rss_kb for m in mappings() if (m.start, m.end) in written}
    after = results()
    print(json.dumps({"before": before, "after": after, "dropped_kb": dropped, "resident_before_kb": resident_before,
                      "resident_after_kb": resident_after, "resident_again_kb": file_kb(),
                      "written": sorted(written.values()), "written_after": sorted(written_after.values())}))
""")


def test_every_clean_library_page_can_go_and_the_models_and_kernels_still_compute_the_same(tmp_path):
    """The daemon drops every clean file page after warm-up: onnxruntime, OpenCV and the Numba kernels give
    the same results afterwards, what they use faults back in, and nothing written is touched."""
    out = subprocess.run([sys.executable, "-c", CHILD_ALL], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert report["after"] == report["before"]
    assert report["dropped_kb"] > 30_000  # LLVM alone is ~70 MB once kernels are compiled
    assert report["resident_after_kb"] < report["resident_before_kb"] / 3
    assert report["resident_after_kb"] < report["resident_again_kb"] < report["resident_before_kb"]
    assert report["written"] and report["written_after"] == report["written"]


def test_only_clean_read_only_file_mappings_are_dropped_and_never_a_device(monkeypatch):
    """The filter itself, on made-up mappings: libraries' clean code goes; a camera's or a shared-memory ring's
    device mapping, anything writable, anything holding a private page, and anonymous memory stay."""
    from edge.server import memory

    rows = [memory.Mapping(0x1000, 0x5000, "r-xp", "/usr/lib/libfoo.so", 16, 0),
            memory.Mapping(0x5000, 0x6000, "r--p", "/usr/lib/libfoo.so", 4, 4),  # relocated: private pages
            memory.Mapping(0x6000, 0x7000, "rw-p", "/usr/lib/libfoo.so", 4, 0),
            memory.Mapping(0x7000, 0x9000, "r--s", "/dev/video0", 8, 0),
            memory.Mapping(0x9000, 0xA000, "r--s", "/dev/shm/edge-camera-ring", 4, 0),
            memory.Mapping(0xA000, 0xB000, "r--p", "", 4, 4),
            memory.Mapping(0xB000, 0xC000, "r--p", "[vvar]", 4, 0),
            memory.Mapping(0xC000, 0xE000, "r--p", "/opt/edge/.venv/lib/libllvmlite.so", 8, 0)]
    advised: list[tuple[int, int, int]] = []

    class Libc:
        @staticmethod
        def madvise(start, length, advice):
            advised.append((start, length, advice))
            return 0

    monkeypatch.setattr(memory, "mappings", lambda pid="self": rows)
    monkeypatch.setattr(memory, "libc", lambda: Libc())
    assert memory.drop_library_pages() == 16 + 8
    assert advised == [(0x1000, 0x4000, memory.MADV_DONTNEED), (0xC000, 0x2000, memory.MADV_DONTNEED)]
    advised.clear()
    assert memory.drop_library_pages(("libllvmlite",)) == 8 and advised == [(0xC000, 0x2000, memory.MADV_DONTNEED)]
