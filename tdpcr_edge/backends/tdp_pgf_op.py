"""The TDP_PGF node, in one place: its ONNX schema, its translation from ``tdpcr::pgf_fuse``,
reading a graph that holds it, and its ONNX Runtime implementation.

The node carries the per-pixel part of PGF (``model.pgf.pgf_fuse``: b, Q, A and F of the
formulation in model/pgf.py and docs/model.md): inputs (optical, sar_proj, prompt, bank,
context, bias_weight, bias_bias), outputs (fused, reliance), attributes
``plugin_version="1"`` and ``plugin_namespace=""`` that TensorRT's ONNX parser uses to find
the plugin creator. Registering the schema lets onnx.checker validate graphs holding the node,
lets shape inference type them, and gives onnxscript its two outputs.

On ONNX Runtime (the CPU, so plugin-node graphs are verified here and not only on a device),
onnxruntime-extensions runs Python custom ops from its own domain, ``ai.onnx.contrib``; graphs
are re-domained in memory before a session is made, and the file on disk keeps the ``tdpcr``
domain that TensorRT sees."""

from __future__ import annotations

import contextlib

import numpy as np
import onnx
from onnx.defs import OpSchema

from ..contract import PLUGIN_DOMAIN as DOMAIN
from ..contract import PLUGIN_INPUTS as INPUTS
from ..contract import PLUGIN_OP as OP_TYPE
from ..contract import PLUGIN_OUTPUTS as OUTPUTS
from ..contract import PLUGIN_VERSION


def register_schema() -> None:
    if onnx.defs.has(OP_TYPE, DOMAIN):
        return
    param = OpSchema.FormalParameter
    schema = OpSchema(
        OP_TYPE,
        DOMAIN,
        1,
        doc="Prompt-Guided Fusion, per-pixel part: b = conv3x3(P), A = sigmoid(g * (P . E) + b), F = O + A (phi(S) - O).",
        inputs=[param(n, "T") for n in INPUTS],
        outputs=[param(n, "T") for n in OUTPUTS],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "FP32 or FP16, all inputs alike")],
        attributes=[
            OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version"),
            OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace"),
        ],
    )
    onnx.defs.register_schema(schema)


def tensor_types(proto: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor the shape inference can tell (the TDP_PGF schema included)."""
    register_schema()
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001  (an unreadable graph: check what the file itself states)
        inferred = proto
    g = inferred.graph
    out = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.output, *g.value_info) if v.type.tensor_type.elem_type}
    out.update({i.name: i.data_type for i in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                out[node.output[0]] = value.data_type
    return out


def count_plugin_nodes(model: onnx.ModelProto) -> int:
    return sum(1 for n in model.graph.node if n.op_type == OP_TYPE and n.domain == DOMAIN)


def translation_table() -> dict:
    """custom_translation_table for torch.onnx.export: tdpcr::pgf_fuse -> one TDP_PGF node."""
    import onnxscript
    import torch

    from ..model import pgf as _pgf  # noqa: F401  (registers torch.ops.tdpcr.pgf_fuse)

    register_schema()
    opset = onnxscript.values.Opset(DOMAIN, 1)
    op = onnxscript.values.Op(opset, OP_TYPE)

    def tdp_pgf(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias):
        return op(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias, plugin_version=PLUGIN_VERSION, plugin_namespace="")

    return {torch.ops.tdpcr.pgf_fuse.default: tdp_pgf}


_REGISTERED = False


# onnxruntime-extensions' Python ops take no float16: an FP16 TDP_PGF node runs as the FP32
# op between Casts (exact from FP16, one rounding back), which is the kernel's half path:
# FP16 storage, FP32 arithmetic. The Casts carry these suffixes, so they can be taken out.
CAST_IN, CAST_OUT = "__ort_fp32_in", "__ort_fp16_out"


def _pgf(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias):
    """The same equations as tdpcr_edge.model.pgf.pgf_fuse, in numpy, FP32 arithmetic
    whatever the storage type (as the CUDA kernel computes)."""
    optical, sar_proj, prompt, bank, context, bias_weight, bias_bias = (
        np.asarray(a, np.float32) for a in (optical, sar_proj, prompt, bank, context, bias_weight, bias_bias)
    )
    h, w = prompt.shape[2:]
    padded = np.pad(prompt, ((0, 0), (0, 0), (1, 1), (1, 1)))
    bias = np.full((prompt.shape[0], 1, h, w), bias_bias[0], np.float32)
    for dy in range(3):
        for dx in range(3):
            bias += np.einsum("nkhw,k->nhw", padded[:, :, dy : dy + h, dx : dx + w], bias_weight[0, :, dy, dx])[:, None]
    q = np.einsum("nkhw,kc->nchw", prompt, bank)
    gate = 1.0 / (1.0 + np.exp(-(context[:, :, None, None] * q + bias)))
    fused = optical + gate * (sar_proj - optical)
    return fused, gate.mean(axis=1, keepdims=True)


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    attrs = {"plugin_version": PyCustomOpDef.dt_string, "plugin_namespace": PyCustomOpDef.dt_string}
    f = PyCustomOpDef.dt_float

    @onnx_op(op_type=OP_TYPE, inputs=[f] * 7, outputs=[f, f], attrs=attrs)
    def tdp_pgf(*inputs, **_attrs):
        fused, reliance = _pgf(*inputs)
        return fused.astype(np.float32), reliance.astype(np.float32)

    _REGISTERED = True


def _fp16_nodes(proto: onnx.ModelProto) -> set[str]:
    """Names of the TDP_PGF nodes whose inputs are FP16 (by ONNX type inference)."""
    types = tensor_types(proto)
    return {
        n.name
        for n in proto.graph.node
        if n.op_type == OP_TYPE and n.domain == DOMAIN and types.get(n.input[0]) == onnx.TensorProto.FLOAT16
    }


def has_plugin_nodes(proto: onnx.ModelProto) -> bool:
    return any(n.op_type == OP_TYPE and n.domain == DOMAIN for n in proto.graph.node)


def to_ort_domain(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose TDP_PGF nodes live in the extensions' domain."""
    from onnxruntime_extensions import (
        default_opset_domain,
        get_library_path,  # noqa: F401  (fail early if missing)
    )

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    half = _fp16_nodes(proto)
    nodes = []
    for node in proto.graph.node:
        if not (node.op_type == OP_TYPE and node.domain == DOMAIN):
            nodes.append(node)
            continue
        node.domain = default_opset_domain()
        if node.name not in half:
            nodes.append(node)
            continue
        for i, name in enumerate(list(node.input)):
            cast = onnx.helper.make_node(
                "Cast", [name], [f"{node.name}{CAST_IN}{i}"], to=onnx.TensorProto.FLOAT, name=f"{node.name}{CAST_IN}{i}"
            )
            nodes.append(cast)
            node.input[i] = cast.output[0]
        outs = list(node.output)
        for j, name in enumerate(outs):
            node.output[j] = f"{node.name}{CAST_OUT}{j}_fp32"
        nodes.append(node)
        for j, name in enumerate(outs):
            nodes.append(
                onnx.helper.make_node("Cast", [node.output[j]], [name], to=onnx.TensorProto.FLOAT16, name=f"{node.name}{CAST_OUT}{j}")
            )
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    imports = [o for o in proto.opset_import if o.domain != DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(imports + [onnx.helper.make_opsetid(default_opset_domain(), 1)])
    return proto


def from_ort_domain(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime_extensions import default_opset_domain

    casts = {n.name: n for n in proto.graph.node if n.op_type == "Cast" and (CAST_IN in n.name or CAST_OUT in n.name)}
    for node in proto.graph.node:
        if node.op_type == OP_TYPE and node.domain == default_opset_domain():
            node.domain = DOMAIN
            if casts:  # an FP16 node: back to its own FP16 inputs and outputs
                node.input[:] = [
                    casts[f"{node.name}{CAST_IN}{i}"].input[0] if f"{node.name}{CAST_IN}{i}" in casts else x
                    for i, x in enumerate(node.input)
                ]
                node.output[:] = [
                    casts[f"{node.name}{CAST_OUT}{j}"].output[0] if f"{node.name}{CAST_OUT}{j}" in casts else x
                    for j, x in enumerate(node.output)
                ]
    if casts:
        kept = [n for n in proto.graph.node if n.name not in casts]
        del proto.graph.node[:]
        proto.graph.node.extend(kept)
    imports = [o for o in proto.opset_import if o.domain != default_opset_domain()]
    del proto.opset_import[:]
    proto.opset_import.extend(imports + [onnx.helper.make_opsetid(DOMAIN, 1)])
    return proto


def session_options(plugin: bool, factory=None):
    import onnxruntime as ort

    so = (factory or ort.SessionOptions)()
    if plugin:
        from onnxruntime_extensions import get_library_path

        _register()
        so.register_custom_ops_library(get_library_path())
    return so


@contextlib.contextmanager
def sessions_with_plugin():
    """Make every ort.SessionOptions() created inside (ONNX Runtime's calibrator makes its
    own) able to run TDP_PGF."""
    import onnxruntime as ort

    original = ort.SessionOptions

    def patched():
        return session_options(True, factory=original)

    ort.SessionOptions = patched
    try:
        yield
    finally:
        ort.SessionOptions = original
