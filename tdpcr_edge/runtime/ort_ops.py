"""TDP_PGF for ONNX Runtime on the CPU, so plugin-node graphs are verified here and not
only on a device. onnxruntime-extensions runs Python custom ops from its own domain,
``ai.onnx.contrib``; graphs are re-domained in memory before a session is made, and the
file on disk keeps the ``tdpcr`` domain that TensorRT sees."""

from __future__ import annotations

import contextlib

import numpy as np
import onnx

from ..contract import PLUGIN_DOMAIN as DOMAIN
from ..contract import PLUGIN_OP as OP_TYPE

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
    from .graph import tensor_types

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
