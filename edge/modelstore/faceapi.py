"""dlib's ResNet face recogniser, rebuilt as ONNX from the weights that the face-api npm package ships.

dlib's ``dlib_face_recognition_resnet_model_v1`` (Davis King, public domain / CC0; 99.38 % on LFW) is a
29-layer ResNet: 150x150 RGB in, 128 values out, compared by Euclidean distance (same person below ~0.6).
``@vladmandic/face-api`` (MIT) ships its weights as TensorFlow.js tensors, uint8-quantized per tensor with
a scale and a minimum, and runs them with this graph (src/faceRecognitionNet/ of that package):

- input: RGB 0..255 minus the mean (122.782, 117.001, 104.298), divided by 255;
- 7x7 stride-2 convolution (32), 3x3 stride-2 max pooling;
- residual blocks of two 3x3 convolutions at 32, 64, 128, 256 channels; each block that halves the size
  adds a 2x2 average pooling of its input, zero-padded in channels (and by one row and column where the
  stride-2 convolution's "valid" output is one smaller);
- global average, then a 256x128 matrix.

Every convolution carries a bias and a per-channel affine "scale" layer (dlib's batch norm, frozen); both
are folded into the convolution here. Stride-2 convolutions and pooling are unpadded ("valid"), stride-1
ones keep the size. The result is a plain fp32 ONNX graph; building it is deterministic (element-wise
float32 arithmetic only), so its sha256 is pinned in models/manifest.toml like the other models.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from edge.errors import ModelError

INPUT_SIZE = 150
MEAN_RGB = (122.782, 117.001, 104.298)
#: Residual stages: (name prefix, channels, blocks after the first), the first block of each but the
#: first halves the size.
STAGES = (("conv32", 32, 3), ("conv64", 64, 3), ("conv128", 128, 2), ("conv256", 256, 2))


def read_weights(manifest: bytes, read: Callable[[str], bytes]) -> dict[str, np.ndarray]:
    """TensorFlow.js weights (manifest JSON plus its binary shards, read by name) as float32 arrays."""
    tensors: dict[str, np.ndarray] = {}
    for group in json.loads(manifest):
        data = b"".join(read(path) for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            count = int(np.prod(entry["shape"], dtype=np.int64))
            quantization = entry.get("quantization")
            if quantization:
                if quantization["dtype"] != "uint8":
                    raise ModelError(f"unexpected quantization {quantization['dtype']} for {entry['name']}",
                                     code="model_corrupt")
                raw = np.frombuffer(data, np.uint8, count, offset).astype(np.float32)
                values = raw * np.float32(quantization["scale"]) + np.float32(quantization["min"])
                offset += count
            else:
                values = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
                offset += 4 * count
            tensors[entry["name"]] = values.reshape(entry["shape"])
        if offset != len(data):
            raise ModelError(f"weights shard holds {len(data)} bytes, the manifest describes {offset}",
                             code="model_corrupt")
    return tensors


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def constant(self, value: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        from onnx import helper

        output = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def conv(self, x: str, prefix: str, stride: int, relu: bool) -> str:
        w = self.weights
        filters, bias = w[f"{prefix}/conv/filters"], w[f"{prefix}/conv/bias"]  # filters: kh, kw, in, out
        scale, shift = w[f"{prefix}/scale/weights"], w[f"{prefix}/scale/biases"]
        kernel = np.ascontiguousarray(filters.transpose(3, 2, 0, 1) * scale[:, None, None, None], np.float32)
        size = filters.shape[0]
        pad = 0 if stride == 2 else size // 2
        offset = (bias * scale + shift).astype(np.float32)
        y = self.node("Conv", [x, self.constant(kernel, "w"), self.constant(offset, "b")],
                      kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4)
        return self.node("Relu", [y]) if relu else y

    def residual(self, x: str, prefix: str) -> str:
        y = self.conv(self.conv(x, f"{prefix}/conv1", 1, True), f"{prefix}/conv2", 1, False)
        return self.node("Relu", [self.node("Add", [y, x])])

    def residual_down(self, x: str, prefix: str, size: int, channels_in: int, channels_out: int) -> tuple[str, int]:
        y = self.conv(self.conv(x, f"{prefix}/conv1", 2, True), f"{prefix}/conv2", 1, False)
        pooled = self.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
        conv_size, pool_size = (size - 3) // 2 + 1, size // 2
        if conv_size != pool_size:
            grow = pool_size - conv_size
            y = self.node("Pad", [y, self.constant(np.array([0, 0, 0, 0, 0, 0, grow, grow], np.int64), "pads")])
        if channels_out != channels_in:
            extra = channels_out - channels_in
            pooled = self.node("Pad", [pooled, self.constant(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64),
                                                               "pads")])
        return self.node("Relu", [self.node("Add", [y, pooled])]), pool_size


def build_onnx(weights: dict[str, np.ndarray]) -> Any:
    """The ONNX model: input ``image`` 1x3x150x150 float32 RGB 0..255, output ``embedding`` 1x128."""
    from onnx import TensorProto, checker, helper

    g = _Graph(weights)
    mean = np.array(MEAN_RGB, np.float32).reshape(1, 3, 1, 1)
    x = g.node("Mul", [g.node("Sub", ["image", g.constant(mean, "mean")]),
                       g.constant(np.array(1 / 255, np.float32), "inv255")])
    x = g.conv(x, "conv32_down", 2, True)
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size = ((INPUT_SIZE - 7) // 2 + 1 - 3) // 2 + 1  # 72 after the 7x7 convolution, 35 after pooling
    channels = 32
    for prefix, width, blocks in STAGES:
        if width != 32:
            x, size = g.residual_down(x, f"{prefix}_down", size, channels, width)
            channels = width
        for index in range(1, blocks + 1):
            x = g.residual(x, f"{prefix}_{index}")
    x, size = g.residual_down(x, "conv256_down_out", size, channels, channels)
    pooled = g.node("Flatten", [g.node("GlobalAveragePool", [x])])
    g.nodes.append(helper.make_node("MatMul", [pooled, g.constant(weights["fc"].astype(np.float32), "fc")],
                                    ["embedding"]))
    graph = helper.make_graph(
        g.nodes, "dlib_resnet_v1_face_recognition",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 128])], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edge")
    model.ir_version = 8
    checker.check_model(model)
    return model


def faceapi_resnet_to_onnx(manifest: bytes, read: Callable[[str], bytes]) -> bytes:
    """Fetch-time conversion: the weights manifest and a reader of its shards, to serialized ONNX bytes."""
    try:
        weights = read_weights(manifest, read)
        model = build_onnx(weights)
    except KeyError as exc:
        raise ModelError(f"face-api weights lack tensor {exc}: not the expected recognition model",
                         code="model_corrupt") from exc
    data: bytes = model.SerializeToString()
    return data
