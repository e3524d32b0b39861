"""FP16 with explicit casts, the graph pass of the ``fp16`` precision and the FP16 islands of
``mixed``. TensorRT 10/11 networks are strongly typed, so precision lives in the graph:
everything FP16 except the precision-sensitive nodes (reductions, softmax, normalisation
statistics, and the residual add and clip that produce the reconstruction), with FP32 graph
inputs and outputs. TDP_PGF nodes take FP16 (the plugin's half path); export keeps them FP32
only where the measured drift requires it.
"""

from __future__ import annotations

import warnings
from typing import Iterable

import numpy as np
import onnx

from ..contract import PLUGIN_OP as OP_TYPE
from ..errors import ConfigError

FP32_OPS = ("ReduceMean", "GlobalAveragePool", "Softmax", "Einsum")


def _reconstruction_tail(proto: onnx.ModelProto) -> list[str]:
    """Names of the nodes that add the residual to the cloudy input and clip it: kept FP32
    so the reconstruction is not rounded to FP16 right at the output."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    names, frontier = [], ["reconstruction"]
    while frontier and len(names) < 3:
        node = producers.get(frontier.pop())
        if node is None or node.op_type not in ("Clip", "Add", "Max", "Min"):
            continue
        names.append(node.name)
        frontier.extend(node.input)
    return names


def _float32_outputs(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Every graph output FP32, so every artifact has one interface. An output the converter
    merely cast to FP16 from an FP32 result (the reconstruction, computed in FP32 by the
    blocked tail) gets that FP32 result back, uncast: casting it down and up again would round
    the reconstruction to FP16 right at the output. A truly FP16 output gets a Cast to FP32."""
    from ..backends.tdp_pgf_op import tensor_types

    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    types = None
    for out in proto.graph.output:
        if out.type.tensor_type.elem_type != f16:
            continue
        producer = next((n for n in proto.graph.node if out.name in n.output), None)
        if producer is not None and producer.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in producer.attribute):
            types = types if types is not None else tensor_types(proto)
            source = producer.input[0]
            if types.get(source) == f32:
                proto.graph.node.remove(producer)
                for node in proto.graph.node:
                    node.output[:] = [out.name if o == source else o for o in node.output]
                    node.input[:] = [out.name if i == source else i for i in node.input]
                out.type.tensor_type.elem_type = f32
                continue
        inner = out.name + "_fp16"
        for node in proto.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        proto.graph.node.append(onnx.helper.make_node("Cast", [inner], [out.name], to=f32, name=out.name + "_to_fp32"))
        out.type.tensor_type.elem_type = f32
    return proto


def _own_clip_bounds(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give every Clip its own min/max initializers. The exporter folds each ReLU with a
    learned clip into Clip(0, r), all sharing one 0.0, the reconstruction's FP32 clamp
    included; the FP16 converter keeps a shared initializer in FP32 for all its users, which
    leaves FP16 Clips with FP32 bounds (an invalid graph)."""
    inits = {i.name: i for i in proto.graph.initializer}
    users: dict[str, int] = {}
    for node in proto.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    for node in proto.graph.node:
        if node.op_type != "Clip":
            continue
        for k in (1, 2):
            name = node.input[k] if k < len(node.input) else ""
            if name in inits and users[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name}"
                proto.graph.initializer.append(copy)
                node.input[k] = copy.name
                users[name] -= 1
    return proto


def _consistent_casts(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A Cast to FP32 whose output the converter typed FP16 casts to FP16. The converter
    rewrites the types a graph records for its tensors but not a Cast's target: a mask built in
    the graph (window attention's) would reach its FP16 consumers as FP32, an invalid graph."""
    f16, f32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    typed = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    for node in proto.graph.node:
        if node.op_type == "Cast" and typed.get(node.output[0]) == f16:
            for a in node.attribute:
                if a.name == "to" and a.i == f32:
                    a.i = f16
    return proto


def to_fp16(proto: onnx.ModelProto, plugin_fp16: bool = True) -> onnx.ModelProto:
    """FP16 graph with explicit casts, precision-sensitive nodes kept FP32. TDP_PGF nodes take
    FP16 (the kernel's half path: FP16 storage, FP32 arithmetic) unless ``plugin_fp16`` is
    False, which keeps them FP32 islands."""
    from onnxconverter_common import float16

    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # the converter works in place
    proto = _own_clip_bounds(proto)
    block_ops = list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP32_OPS) + ([] if plugin_fp16 else [OP_TYPE])
    # The converter warns for every weight below FP16's range that it rounds to 1e-7; the
    # drift measurement that follows accounts for that rounding, so the warnings add nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            proto, keep_io_types=True, op_block_list=block_ops, node_block_list=_reconstruction_tail(proto), disable_shape_infer=True
        )
    return _float32_outputs(_consistent_casts(converted))


def fp16_islands(proto: onnx.ModelProto, convs: Iterable[str]) -> onnx.ModelProto:
    """Run the named convolutions in FP16 inside an otherwise FP32/INT8 graph: a Cast to
    FP16 on the data input, FP16 weights and bias, a Cast back to FP32 on the output. Built
    explicitly because an island's input often comes out of a DequantizeLinear that other
    (INT8) consumers share, where a generic converter cannot see the types."""
    from onnx import helper, numpy_helper

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    wanted = set(convs)
    nodes = []
    for node in graph.node:
        if node.op_type != "Conv" or node.name not in wanted:
            nodes.append(node)
            continue
        x, *params = node.input
        cast_in = helper.make_node("Cast", [x], [f"{node.name}_in_fp16"], to=onnx.TensorProto.FLOAT16, name=f"{node.name}_cast_in")
        new_params = []
        for p in params:
            if p not in inits:
                raise ConfigError(
                    f"{node.name}: parameter {p} is not an initializer; cannot make an FP16 island (export the graph again without "
                    "--plugin)"
                )
            half = numpy_helper.from_array(numpy_helper.to_array(inits[p]).astype(np.float16), f"{p}_fp16")
            graph.initializer.append(half)
            new_params.append(half.name)
        out = node.output[0]
        conv = helper.make_node("Conv", [cast_in.output[0], *new_params], [f"{out}_fp16"], name=node.name)
        conv.attribute.extend(node.attribute)
        cast_out = helper.make_node("Cast", [conv.output[0]], [out], to=onnx.TensorProto.FLOAT, name=f"{node.name}_cast_out")
        nodes += [cast_in, conv, cast_out]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in graph.node for i in n.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return proto
