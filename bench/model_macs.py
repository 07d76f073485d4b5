"""What a second face network costs a Raspberry Pi, estimated from compute (issue 14 part 3).

There is no Pi on the build machines, so the embedders' cost on one is estimated, not measured: each
fetched model's multiply-accumulates (convolutions and the final projection, from the ONNX graph with
shapes inferred at the input the gate feeds it) are counted and scaled by SFace's published fp32 latency
on a Pi 4B (68.8 ms) and an RK3588/Pi 5-class A76 (28.9 ms; OpenCV Zoo, DESIGN.md). That assumes both
networks run at the same multiply-accumulates per second, which plain convolutional networks of this size
roughly do; the x86-only PRelu rewrite (1x1 depthwise convolutions, models/manifest.toml) is left out, so
SFace is counted as the Pi runs it. The number to trust is the one measured on the board:
bench/face_fusion.py times both embedders on the same aligned faces wherever it runs.
Run: .venv/bin/python bench/model_macs.py  (writes bench/results/model_macs.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save

from edge.modelstore.manifest import resolve_model

#: SFace fp32 on each board, milliseconds per face (OpenCV Zoo's published table, quoted in DESIGN.md).
PUBLISHED_SFACE_MS = {"raspberry_pi_4b": 68.8, "rk3588_a76": 28.9}
#: Faces embedded per gate session (the three largest frames of the tracked face, edge/pipeline.py).
FACES_PER_SESSION = 3


def multiply_accumulates(path: Path, side: int) -> int:
    """Multiply-accumulates of one forward pass at a ``side`` x ``side`` RGB input."""
    model = onnx.load(str(path))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, side, side), strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output)}
    weights = {w.name: list(w.dims) for w in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            kernel = weights[node.input[1]]
            groups = next((a.i for a in node.attribute if a.name == "group"), 1)
            if groups > 1 and kernel[2:] == [1, 1]:
                continue  # PRelu written as per-channel 1x1 convolutions on x86-64 only
            total += int(np.prod(shapes[node.output[0]])) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            total += int(np.prod(weights[node.input[1]]))
    return total


def main() -> None:
    counted = {"sface": multiply_accumulates(resolve_model("sface"), 112),
               "dlib_resnet": multiply_accumulates(resolve_model("dlib_resnet"), 150)}
    ratio = counted["dlib_resnet"] / counted["sface"]
    boards = {board: {"sface_ms_published": ms, "dlib_ms_estimated": round(ms * ratio, 1),
                      "added_per_session_ms_estimated": round(FACES_PER_SESSION * ms * ratio)}
              for board, ms in PUBLISHED_SFACE_MS.items()}
    payload = {"mmacs": {k: round(v / 1e6, 1) for k, v in counted.items()}, "dlib_over_sface": round(ratio, 3),
               "faces_per_session": FACES_PER_SESSION, "boards": boards}
    print(payload)
    print("wrote", save("model_macs", payload))


if __name__ == "__main__":
    main()
