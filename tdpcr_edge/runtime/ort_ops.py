"""TDP_PGF for ONNX Runtime on the CPU, so plugin-node graphs are verified here and not
only on a device. onnxruntime-extensions runs Python custom ops from its own domain,
``ai.onnx.contrib``; graphs are re-domained in memory before a session is made, and the
file on disk keeps the ``tdpcr`` domain that TensorRT sees."""

from __future__ import annotations

import contextlib

import numpy as np
import onnx

from ..export.plugin_op import DOMAIN, OP_TYPE

_REGISTERED = False


def _register() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    f = PyCustomOpDef.dt_float

    @onnx_op(op_type=OP_TYPE, inputs=[f] * 7, outputs=[f, f], attrs={"plugin_version": PyCustomOpDef.dt_string, "plugin_namespace": PyCustomOpDef.dt_string})
    def tdp_pgf(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias, **_attrs):
        # The same equations as tdpcr_edge.model.pgf.pgf_fuse, in numpy.
        h, w = prompt.shape[2:]
        padded = np.pad(prompt, ((0, 0), (0, 0), (1, 1), (1, 1)))
        bias = np.full((prompt.shape[0], 1, h, w), bias_bias[0], np.float32)
        for dy in range(3):
            for dx in range(3):
                bias += np.einsum("nkhw,k->nhw", padded[:, :, dy : dy + h, dx : dx + w], bias_weight[0, :, dy, dx])[:, None]
        q = np.einsum("nkhw,kc->nchw", prompt, bank)
        gate = 1.0 / (1.0 + np.exp(-(context[:, :, None, None] * q + bias)))
        fused = optical + gate * (sar_proj - optical)
        return fused.astype(np.float32), gate.mean(axis=1, keepdims=True).astype(np.float32)

    _REGISTERED = True


def has_plugin_nodes(proto: onnx.ModelProto) -> bool:
    return any(n.op_type == OP_TYPE and n.domain == DOMAIN for n in proto.graph.node)


def to_ort_domain(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose TDP_PGF nodes live in the extensions' domain."""
    from onnxruntime_extensions import get_library_path  # noqa: F401  (fail early if missing)
    from onnxruntime_extensions import default_opset_domain

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for node in proto.graph.node:
        if node.op_type == OP_TYPE and node.domain == DOMAIN:
            node.domain = default_opset_domain()
    imports = [o for o in proto.opset_import if o.domain != DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(imports + [onnx.helper.make_opsetid(default_opset_domain(), 1)])
    return proto


def from_ort_domain(proto: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime_extensions import default_opset_domain

    for node in proto.graph.node:
        if node.op_type == OP_TYPE and node.domain == default_opset_domain():
            node.domain = DOMAIN
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
