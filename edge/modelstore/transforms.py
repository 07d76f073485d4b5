"""Graph fixes applied once, at fetch time, with the ``onnx`` package (never at run time).

``repair_sface``: the SFace int8bq file declares its 29 weight tensors as graph inputs while the Conv and
Gemm nodes read those un-dequantized names, so onnxruntime asks for inputs nobody feeds. Each such input
is rewired to the ``<name>_reshaped`` (or ``<name>_dequantized``) tensor that the existing
DequantizeLinear/Reshape nodes produce, and the dangling graph inputs are dropped.

``repair_yunet``: the YuNet int8bq file has two defects. (1) Its input is pinned at 1x3x640x640 although
every reshape in the graph uses -1; freeing height and width lets small frames run without padding to
640 px. (2) Twenty DequantizeLinear nodes quantize per tensor (one scalar scale) but carry a
``block_size`` attribute, which onnxruntime >= 1.20 rejects at run time ("block_size must be 0 for
per-tensor quantization"); OpenCV ignores it. Dropping ``block_size``/``axis`` on those nodes keeps the
arithmetic identical.

``prelu_as_relu``: onnxruntime (1.31, CPU) runs PRelu with a per-channel [C,1,1] slope through its
generic broadcasting path: half of SFace's time (18 of 34 ms, single thread, profiled). The identity
PRelu(x, s) = Relu(x) - s * Relu(-x) uses only fast element-wise kernels: bit-identical outputs, 1.4-1.6x
faster end to end (docs/MODELS.md).

``prelu_as_depthwise``: the same PRelu as ``x + (1 - s) * Relu(-x)``, each product written as a 1x1
depthwise convolution: ``Add(DWConv[1-s](Relu(DWConv[-1](x))), x)``. On x86-64 onnxruntime runs
convolutions in its blocked NCHWc layout, and every element-wise op between two of them costs a reorder out
of that layout and back (15 % of SFace's time, profiled); depthwise convolutions stay in it, their Relu and
their Add fuse into the kernels, and SFace takes 6.7 instead of 9.5 ms on one thread, outputs within 2e-6.
Without the blocked layout (onnxruntime's aarch64 wheels are built without it) the same graph is 5-9 %
slower, so only the x86-64 manifest entry uses it (models/manifest.toml, docs/MODELS.md).

``fold_fp32``: evaluate every DequantizeLinear (and the Reshape after it) on constant weights once and
store the fp32 result, so the runtime graph holds plain fp32 convolutions. Kept or not by measurement
(bench/face.py, docs/MODELS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def repair_sface(model: Any) -> Any:
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    produced = {out for node in graph.node for out in node.output}
    primary = graph.input[0].name
    rewire: dict[str, str] = {}
    for graph_input in graph.input:
        name = graph_input.name
        if name == primary or name in initializers:
            continue
        for suffix in ("_reshaped", "_dequantized"):
            if name + suffix in produced:
                rewire[name] = name + suffix
                break
        else:
            raise ValueError(f"graph input {name!r} is neither fed nor produced by a dequantize node")
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in rewire:
                node.input[index] = rewire[name]
    kept = [i for i in graph.input if i.name not in rewire and (i.name == primary or i.name not in initializers)]
    del graph.input[:]
    graph.input.extend(kept)
    if len(rewire) != 29:
        raise ValueError(f"expected to rewire 29 SFace weight inputs, rewired {len(rewire)}")
    return model


def _initializer_arrays(graph: Any) -> dict[str, Any]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def drop_per_tensor_block_size(model: Any) -> Any:
    """Make per-tensor DequantizeLinear nodes plain: scalar scale/zero point, no block_size/axis."""
    from onnx import numpy_helper

    graph = model.graph
    arrays = _initializer_arrays(graph)
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[1] not in arrays:
            continue
        if arrays[node.input[1]].size != 1:
            continue
        kept = [a for a in node.attribute if a.name not in ("block_size", "axis")]
        del node.attribute[:]
        node.attribute.extend(kept)
        for slot in (1, 2):
            if slot < len(node.input) and node.input[slot] in arrays:
                scalar_name = node.input[slot] + "_scalar"
                graph.initializer.append(numpy_helper.from_array(arrays[node.input[slot]].reshape(()), scalar_name))
                node.input[slot] = scalar_name
    return model


def _dequantize(q: Any, scale: Any, zero_point: Any, axis: int, block_size: int) -> Any:
    import numpy as np

    q = q.astype(np.float32)
    zp = np.zeros_like(scale, dtype=np.float32) if zero_point is None else zero_point.astype(np.float32)
    if scale.size == 1:
        return ((q - zp.reshape(())) * scale.reshape(())).astype(np.float32)
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
        zp = np.repeat(zp, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
    else:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q - zp) * scale).astype(np.float32)


def fold_fp32(model: Any) -> Any:
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    arrays = _initializer_arrays(graph)
    folded: dict[str, Any] = {}
    for node in graph.node:
        inputs = list(node.input)
        if node.op_type == "DequantizeLinear" and all(i in arrays or i == "" for i in inputs):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            zero_point = arrays[inputs[2]] if len(inputs) > 2 and inputs[2] else None
            folded[node.output[0]] = _dequantize(arrays[inputs[0]], arrays[inputs[1]], zero_point,
                                                 int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        elif node.op_type == "Reshape" and inputs[0] in folded and inputs[1] in arrays:
            folded[node.output[0]] = folded[inputs[0]].reshape(arrays[inputs[1]])
    used = {name for node in graph.node for name in node.input}
    keep_nodes = [n for n in graph.node if not any(o in folded for o in n.output)]
    needed = {name for node in keep_nodes for name in node.input}
    del graph.node[:]
    graph.node.extend(keep_nodes)
    new_inits = [t for t in graph.initializer if t.name in needed]
    new_inits += [numpy_helper.from_array(v, k) for k, v in folded.items() if k in needed and k in used]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    return model


def dynamic_input(model: Any) -> Any:
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "height"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "width"
    for output in graph.output:
        out_dims = output.type.tensor_type.shape.dim
        if len(out_dims) >= 2:
            out_dims[1].ClearField("dim_value")
            out_dims[1].dim_param = f"{output.name}_anchors"
    return model


def _replace_prelus(model: Any, expand: Callable[[Any, str, str, str], list[Any]]) -> Any:
    """Each PRelu node becomes ``expand(node, x, slope, y)``'s nodes, in place, in graph order."""
    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        nodes += expand(node, node.input[0], node.input[1], node.output[0])
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def prelu_as_relu(model: Any) -> Any:
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}

    def expand(node: Any, x: str, slope: str, y: str) -> list[Any]:
        if slope in inits:  # rank-4 slope so Mul broadcasts over N, H, W without the generic path
            array = numpy_helper.to_array(inits[slope])
            inits[slope].CopyFrom(numpy_helper.from_array(array.reshape(1, -1, 1, 1), slope))
        return [helper.make_node("Relu", [x], [f"{y}__pos"]),
                helper.make_node("Neg", [x], [f"{y}__neg"]),
                helper.make_node("Relu", [f"{y}__neg"], [f"{y}__negpart"]),
                helper.make_node("Mul", [f"{y}__negpart", slope], [f"{y}__scaled"]),
                helper.make_node("Sub", [f"{y}__pos", f"{y}__scaled"], [y])]

    return _replace_prelus(model, expand)


def prelu_as_depthwise(model: Any) -> Any:
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    slopes = set()

    def expand(node: Any, x: str, slope: str, y: str) -> list[Any]:
        slopes.add(slope)
        array = numpy_helper.to_array(inits[slope]) if slope in inits else None
        if array is None or array.ndim not in (3, 4) or array.size < 2 or array.size != array.shape[-3]:
            # Only a constant slope per channel ([C,1,1] or [1,C,1,1]) is a depthwise product; any other
            # broadcast (one shared slope, one per column) would be rewritten wrongly.
            raise ValueError(f"PRelu {node.name or y!r}: slope is not a constant per-channel [C,1,1] tensor")
        s = array.astype(np.float32).reshape(-1)
        channels = s.size
        graph.initializer.extend([
            numpy_helper.from_array(np.full((channels, 1, 1, 1), -1.0, np.float32), f"{y}__minus_one"),
            numpy_helper.from_array((1.0 - s).reshape(channels, 1, 1, 1), f"{y}__one_minus_slope")])
        return [helper.make_node("Conv", [x, f"{y}__minus_one"], [f"{y}__neg"], group=channels, kernel_shape=[1, 1]),
                helper.make_node("Relu", [f"{y}__neg"], [f"{y}__negpart"]),
                helper.make_node("Conv", [f"{y}__negpart", f"{y}__one_minus_slope"], [f"{y}__scaled"],
                                 group=channels, kernel_shape=[1, 1]),
                helper.make_node("Add", [f"{y}__scaled", x], [y])]

    _replace_prelus(model, expand)
    used = {name for node in graph.node for name in node.input}
    folded = {name for name in slopes if name not in used}  # now inside the depthwise weights
    for listing in (graph.initializer, graph.input):
        kept = [item for item in listing if item.name not in folded]
        del listing[:]
        listing.extend(kept)
    return model


def repair_yunet(model: Any) -> Any:
    return drop_per_tensor_block_size(dynamic_input(model))


TRANSFORMS = {
    "repair_sface": repair_sface,
    "repair_yunet": repair_yunet,
    "repair_sface+fold_fp32": lambda model: fold_fp32(repair_sface(model)),
    "repair_sface+fold_fp32+prelu_as_relu": lambda model: prelu_as_relu(fold_fp32(repair_sface(model))),
    "repair_sface+fold_fp32+prelu_as_depthwise": lambda model: prelu_as_depthwise(fold_fp32(repair_sface(model))),
    "repair_yunet+fold_fp32": lambda model: fold_fp32(repair_yunet(model)),
}
