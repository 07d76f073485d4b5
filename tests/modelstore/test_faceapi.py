"""The face-api (dlib ResNet) conversion: the ONNX graph computes what face-api's TensorFlow.js code does.

The reference below is written from face-api's source (src/faceRecognitionNet/, NHWC, TensorFlow padding
rules), independently of the converter's folding of the scale layers into the convolutions. Random
weights in the real tensor layout, quantized the way the package ships them, exercise every layer.
"""

import json

import numpy as np
import onnxruntime as ort
import pytest

from edge.errors import ModelError
from edge.modelstore.faceapi import MEAN_RGB, STAGES, faceapi_resnet_to_onnx, read_weights


def _layer_names() -> list[tuple[str, int, int]]:
    """(prefix, input channels, output channels, kernel) of every conv layer in the shipped order."""
    layers = [("conv32_down", 3, 32, 7)]
    channels = 32
    for prefix, width, blocks in STAGES:
        if width != 32:
            layers += [(f"{prefix}_down/conv1", channels, width, 3), (f"{prefix}_down/conv2", width, width, 3)]
            channels = width
        for i in range(1, blocks + 1):
            layers += [(f"{prefix}_{i}/conv1", width, width, 3), (f"{prefix}_{i}/conv2", width, width, 3)]
    layers += [("conv256_down_out/conv1", 256, 256, 3), ("conv256_down_out/conv2", 256, 256, 3)]
    return layers


def _package(rng: np.random.Generator) -> tuple[bytes, dict[str, bytes], dict[str, np.ndarray]]:
    """A weights manifest and shard in face-api's format (uint8 quantized except some filters), and the
    float values they decode to."""
    entries, blobs, values = [], [], {}

    def add(name: str, array: np.ndarray, quantize: bool) -> None:
        if quantize:
            low, high = float(array.min()), float(array.max())
            scale = (high - low) / 255 or 1.0
            q = np.round((array - low) / scale).astype(np.uint8)
            entries.append({"name": name, "shape": list(array.shape), "dtype": "float32",
                            "quantization": {"dtype": "uint8", "scale": scale, "min": low}})
            blobs.append(q.tobytes())
            values[name] = q.astype(np.float32) * np.float32(scale) + np.float32(low)
        else:
            entries.append({"name": name, "shape": list(array.shape), "dtype": "float32"})
            blobs.append(array.astype("<f4").tobytes())
            values[name] = array.astype(np.float32)

    for index, (prefix, cin, cout, k) in enumerate(_layer_names()):
        fan_in = k * k * cin
        add(f"{prefix}/conv/filters", rng.normal(0, np.sqrt(2 / fan_in), (k, k, cin, cout)), index % 3 != 1)
        add(f"{prefix}/conv/bias", rng.normal(0, 0.05, cout), True)
        add(f"{prefix}/scale/weights", rng.uniform(0.5, 1.5, cout), True)
        add(f"{prefix}/scale/biases", rng.normal(0, 0.1, cout), True)
    add("fc", rng.normal(0, 0.1, (256, 128)), False)
    manifest = json.dumps([{"paths": ["shard.bin"], "weights": entries}]).encode()
    return manifest, {"shard.bin": b"".join(blobs)}, values


def _conv_tf(x: np.ndarray, w: np.ndarray, stride: int, same: bool) -> np.ndarray:
    """tf.conv2d on NHWC (batch 1) with HWIO filters, 'same' or 'valid' padding."""
    k = w.shape[0]
    if same:  # stride 1 here: pad (k-1)/2 on each side
        p = (k - 1) // 2
        x = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x[0], (k, k), axis=(0, 1))[::stride, ::stride]
    return np.einsum("hwcij,ijco->hwo", windows, w, optimize=True)[None]


def _reference(image_rgb: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    def layer(x, prefix, stride, relu, same):
        out = _conv_tf(x, p[f"{prefix}/conv/filters"], stride, same) + p[f"{prefix}/conv/bias"]
        out = out * p[f"{prefix}/scale/weights"] + p[f"{prefix}/scale/biases"]
        return np.maximum(out, 0) if relu else out

    def residual(x, prefix):
        out = layer(layer(x, f"{prefix}/conv1", 1, True, True), f"{prefix}/conv2", 1, False, True)
        return np.maximum(out + x, 0)

    def residual_down(x, prefix):
        out = layer(layer(x, f"{prefix}/conv1", 2, True, False), f"{prefix}/conv2", 1, False, True)
        h, w = x.shape[1] // 2, x.shape[2] // 2
        pooled = x[:, : 2 * h, : 2 * w].reshape(1, h, 2, w, 2, -1).mean(axis=(2, 4))
        if out.shape[1] != h:  # face-api concatenates a zero row and column to the convolution's output
            out = np.pad(out, ((0, 0), (0, h - out.shape[1]), (0, w - out.shape[2]), (0, 0)))
        pooled = np.pad(pooled, ((0, 0), (0, 0), (0, 0), (0, out.shape[3] - pooled.shape[3])))
        return np.maximum(pooled + out, 0)

    x = ((image_rgb.astype(np.float32) - np.array(MEAN_RGB, np.float32)) / 255)[None]
    x = layer(x, "conv32_down", 2, True, False)
    windows = np.lib.stride_tricks.sliding_window_view(x[0], (3, 3), axis=(0, 1))[::2, ::2]
    x = windows.max(axis=(3, 4))[None]
    for prefix, width, blocks in STAGES:
        if width != 32:
            x = residual_down(x, f"{prefix}_down")
        for i in range(1, blocks + 1):
            x = residual(x, f"{prefix}_{i}")
    x = residual_down(x, "conv256_down_out")
    return x.mean(axis=(1, 2)) @ p["fc"]


def test_the_onnx_graph_computes_face_apis_network():
    rng = np.random.default_rng(3)
    manifest, files, values = _package(rng)
    model = faceapi_resnet_to_onnx(manifest, files.__getitem__)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for _ in range(2):
        image = rng.integers(0, 256, (150, 150, 3)).astype(np.uint8)
        got = session.run(None, {"image": image.transpose(2, 0, 1)[None].astype(np.float32)})[0]
        want = _reference(image, values)
        assert got.shape == (1, 128)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))


def test_conversion_is_deterministic():
    manifest, files, _ = _package(np.random.default_rng(4))
    assert faceapi_resnet_to_onnx(manifest, files.__getitem__) == faceapi_resnet_to_onnx(manifest, files.__getitem__)


def test_a_shard_of_the_wrong_length_is_refused():
    manifest, files, _ = _package(np.random.default_rng(5))
    with pytest.raises(ModelError) as e:
        read_weights(manifest, lambda name: files[name] + b"\0")
    assert e.value.code == "model_corrupt"


def test_weights_of_another_network_are_refused():
    manifest = json.dumps([{"paths": ["s.bin"], "weights": [{"name": "x", "shape": [2], "dtype": "float32"}]}])
    with pytest.raises(ModelError) as e:
        faceapi_resnet_to_onnx(manifest.encode(), lambda name: b"\0" * 8)
    assert e.value.code == "model_corrupt" and "lack tensor" in e.value.message
