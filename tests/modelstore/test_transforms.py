"""The graph repairs, checked on small synthetic graphs built with onnx (no download needed)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edge.modelstore.transforms import _dequantize, drop_per_tensor_block_size, fold_fp32, repair_sface  # noqa: E402


def _dq_graph(dangling: bool, block_scale_scalar: bool = False):
    q = np.arange(-8, 8, dtype=np.int8).reshape(2, 8)
    scale = np.array([[0.5], [0.25]], np.float32) if not block_scale_scalar else np.array([0.5], np.float32)
    inits = [numpy_helper.from_array(q, "w_quantized"), numpy_helper.from_array(scale, "w_scales"),
             numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), "w_zero_point"),
             numpy_helper.from_array(np.array([2, 8], np.int64), "w_shape")]
    dq = helper.make_node("DequantizeLinear", ["w_quantized", "w_scales", "w_zero_point"], ["w_dequantized"],
                          axis=1, block_size=8)
    rs = helper.make_node("Reshape", ["w_dequantized", "w_shape"], ["w_reshaped"])
    mm = helper.make_node("MatMul", ["x", "w" if dangling else "w_reshaped"], ["y"], )
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])]
    if dangling:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 8]))
    graph = helper.make_graph([dq, rs, mm], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _run(model, x):
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_repair_rewires_dangling_weight_input():
    model = _dq_graph(dangling=True)
    # repair_sface insists on exactly SFace's 29 inputs; the rewiring logic itself is what we test here.
    with pytest.raises(ValueError, match="29"):
        repair_sface(model)
    assert [i.name for i in model.graph.input] == ["x"]
    assert model.graph.node[2].input[1] == "w_reshaped"
    x = np.array([[1.0, 2.0]], np.float32)
    expected = x @ (np.arange(-8, 8).reshape(2, 8) * np.array([[0.5], [0.25]]))
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-6)


def test_fold_fp32_matches_dequantized_graph():
    model = _dq_graph(dangling=False)
    x = np.array([[0.3, -1.5]], np.float32)
    before = _run(model, x)
    folded = fold_fp32(model)
    assert all(n.op_type != "DequantizeLinear" for n in folded.graph.node)
    np.testing.assert_allclose(_run(folded, x), before, rtol=1e-6)


def test_blockwise_dequantize_reference():
    q = np.array([[1, 2, 3, 4]], np.int8)
    scale = np.array([[2.0, 10.0]], np.float32)
    out = _dequantize(q, scale, None, axis=1, block_size=2)
    np.testing.assert_array_equal(out, [[2, 4, 30, 40]])


def test_per_tensor_block_size_dropped():
    q = np.arange(4, dtype=np.int8)
    inits = [numpy_helper.from_array(q, "q"), numpy_helper.from_array(np.array([0.5], np.float32), "s")]
    node = helper.make_node("DequantizeLinear", ["q", "s"], ["d"], axis=0, block_size=64)
    add = helper.make_node("Add", ["x", "d"], ["y"])
    graph = helper.make_graph([node, add], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    fixed = drop_per_tensor_block_size(model)
    assert not [a for a in fixed.graph.node[0].attribute if a.name == "block_size"]
    np.testing.assert_allclose(_run(fixed, np.zeros(4, np.float32)), [0, 0.5, 1.0, 1.5])


def test_prelu_rewrite_is_exact():
    from edge.modelstore.transforms import prelu_as_relu

    slope = np.array([0.25, -0.5, 2.0], np.float32).reshape(3, 1, 1)
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(slope, "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    before = _run(model, x)
    after = _run(prelu_as_relu(model), x)
    assert not [n for n in model.graph.node if n.op_type == "PRelu"]
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(before, np.where(x > 0, x, slope[None] * x), rtol=1e-6)


def _prelu_model(slope: np.ndarray, channels: int = 3):
    node = helper.make_node("PRelu", ["x", "s"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 4, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(slope, "s")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("shape", [(3, 1, 1), (1, 3, 1, 1)])
def test_prelu_as_depthwise_computes_prelu(shape):
    from edge.modelstore.transforms import prelu_as_depthwise

    slope = np.array([0.25, -0.5, 2.0], np.float32).reshape(shape)  # negative and above one, as SFace has
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32)
    model = prelu_as_depthwise(_prelu_model(slope))
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Conv", "Relu", "Conv", "Add"]
    assert "s" not in {t.name for t in model.graph.initializer}  # the slope now lives in the depthwise weights
    expected = np.where(x > 0, x, slope.reshape(1, 3, 1, 1) * x)
    np.testing.assert_allclose(_run(model, x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("slope", [np.array([0.25], np.float32), np.full((1, 1, 5), 0.25, np.float32)])
def test_prelu_as_depthwise_refuses_a_slope_that_is_not_per_channel(slope):
    from edge.modelstore.transforms import prelu_as_depthwise

    # One shared slope, or one per column: neither is a depthwise product over channels.
    with pytest.raises(ValueError, match="per-channel"):
        prelu_as_depthwise(_prelu_model(slope))


def test_a_graph_the_transform_cannot_rewrite_is_a_typed_fetch_error():
    from edge.errors import ModelError
    from edge.modelstore.fetch import transform_model
    from edge.modelstore.manifest import ModelSpec

    spec = ModelSpec(name="m", file="m.onnx", task="t", license="l", source="s", member="m.onnx",
                     source_sha256="0" * 64, transform="repair_sface+fold_fp32+prelu_as_depthwise", sha256="0" * 64)
    raw = _prelu_model(np.array([0.25], np.float32)).SerializeToString()  # not SFace: repair_sface refuses it
    with pytest.raises(ModelError) as e:
        transform_model(spec, raw)
    assert e.value.code == "model_corrupt" and "cannot rewrite m.onnx" in e.value.message
    assert "SFace weight inputs" in e.value.message  # the transform's own reason is kept
    with pytest.raises(ModelError) as e:
        transform_model(ModelSpec(**{**spec.__dict__, "transform": "no_such_transform"}), raw)
    assert "no_such_transform" in e.value.message
