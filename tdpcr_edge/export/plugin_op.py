"""The TDP_PGF node: its ONNX schema and its translation from ``tdpcr::pgf_fuse``.

The node carries the per-pixel part of PGF (DESIGN section 0, steps 2, 4 and 5):
inputs (optical, sar_proj, prompt, bank, context, bias_weight, bias_bias), outputs
(fused, reliance),
attributes ``plugin_version="1"`` and ``plugin_namespace=""`` that TensorRT's ONNX parser
uses to find the plugin creator. Registering a schema lets onnx.checker validate graphs
holding the node and gives onnxscript its two outputs.
"""

from __future__ import annotations

import onnx
from onnx.defs import OpSchema

DOMAIN = "tdpcr"
OP_TYPE = "TDP_PGF"
PLUGIN_VERSION = "1"
INPUTS = ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias")
OUTPUTS = ("fused", "reliance")


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


def count_plugin_nodes(model: onnx.ModelProto) -> int:
    return sum(1 for n in model.graph.node if n.op_type == OP_TYPE and n.domain == DOMAIN)
