"""The TDP_PGF node: its ONNX schema and its translation from ``tdpcr::pgf_fuse``.

The node carries the per-pixel part of PGF (``model.pgf.pgf_fuse``: b, Q, A and F of the
formulation in model/pgf.py and docs/model.md):
inputs (optical, sar_proj, prompt, bank, context, bias_weight, bias_bias), outputs
(fused, reliance),
attributes ``plugin_version="1"`` and ``plugin_namespace=""`` that TensorRT's ONNX parser
uses to find the plugin creator. Registering a schema lets onnx.checker validate graphs
holding the node and gives onnxscript its two outputs.
"""

from __future__ import annotations

from ..contract import PLUGIN_DOMAIN as DOMAIN
from ..contract import PLUGIN_OP as OP_TYPE
from ..contract import PLUGIN_VERSION
from ..runtime.graph import register_schema


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
