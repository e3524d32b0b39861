"""Reading an ONNX graph as the runtimes see it: the TDP_PGF node's schema (so onnx's checker
and shape inference know it), the element type of every tensor, the plugin nodes."""

from __future__ import annotations

import onnx
from onnx.defs import OpSchema

from ..contract import PLUGIN_DOMAIN as DOMAIN
from ..contract import PLUGIN_INPUTS as INPUTS
from ..contract import PLUGIN_OP as OP_TYPE
from ..contract import PLUGIN_OUTPUTS as OUTPUTS


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
