"""Per-node rules of the TensorRT check: what the ONNX parser and the TDP_PGF plugin take of one node
(its plugin version and input types, Q/DQ scales and zero points, attributes, mixed input types);
``trt_check.check_graph`` walks the graph and applies them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from ...contract import PLUGIN_INPUTS as INPUTS

ONNX_TYPES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.BFLOAT16: "BF16",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.BOOL: "BOOL",
    onnx.TensorProto.DOUBLE: "DOUBLE",
}


FLOATS = {"FP32", "FP16", "BF16"}


RESIZE_RULES = {
    "coordinate_transformation_mode": {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"},
    "mode": {"nearest", "linear"},
    "nearest_mode": {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"},
    "keep_aspect_ratio_policy": {"stretch"},
}


CONSTANT_AXES = {"Pad": 3, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1}  # op -> index of its `axes` input


# Operators whose floating-point inputs are one type (the inputs indexed here).
SAME_TYPE = {
    "Add": (0, 1),
    "Sub": (0, 1),
    "Mul": (0, 1),
    "Div": (0, 1),
    "Max": None,
    "Min": None,
    "Sum": None,
    "Concat": None,
    "Conv": (0, 1, 2),
    "ConvTranspose": (0, 1, 2),
    "Gemm": (0, 1, 2),
    "MatMul": (0, 1),
    "Einsum": None,
    "Where": (1, 2),
    "Pow": (0,),
}


@dataclass(frozen=True)
class Problem:
    node: str
    op: str
    message: str

    def line(self) -> str:
        return f"{self.node} ({self.op}): {self.message}"


def plugin_problems(n: onnx.NodeProto, name: str, types: dict, creators: set) -> list[Problem]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    version = (
        attrs.get("plugin_version", b"").decode()
        if isinstance(attrs.get("plugin_version"), bytes)
        else str(attrs.get("plugin_version", ""))
    )
    out = []
    if (n.op_type, version) not in creators:
        have = ", ".join(f"{a} v{b}" for a, b in sorted(creators)) or "none"
        out.append(
            Problem(
                name,
                n.op_type,
                f"plugin {n.op_type} v{version or '?'} is not among the plugin library's creators ({have}); rebuild the plugin (make "
                "kernels)",
            )
        )
    if len(n.input) != len(INPUTS):
        out.append(Problem(name, n.op_type, f"{len(n.input)} inputs; the plugin takes {len(INPUTS)} ({', '.join(INPUTS)})"))
    seen = {ONNX_TYPES.get(types.get(i), "?") for i in n.input if i in types}
    if len(seen) > 1 or (seen and not seen <= {"FP32", "FP16"}):
        out.append(
            Problem(name, n.op_type, f"inputs of types {', '.join(sorted(seen))}; the plugin takes all seven in FP32 or all in FP16")
        )
    return out


def qdq_problems(n: onnx.NodeProto, name: str, types: dict, consts: dict, consumers: dict) -> list[Problem]:
    out = []
    quantized = n.output[0] if n.op_type == "QuantizeLinear" else n.input[0]
    zero = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    qtype = ONNX_TYPES.get(types.get(quantized)) or ("UINT8" if zero is None and len(n.input) < 3 else None)
    if zero is not None:
        qtype = {np.dtype(np.int8): "INT8", np.dtype(np.uint8): "UINT8"}.get(zero.dtype, qtype)
    if qtype == "UINT8":
        out.append(
            Problem(
                name,
                n.op_type,
                "UINT8 quantisation (the CPU placement); TensorRT takes INT8 only: export for this target (--target), "
                "which places INT8 for TensorRT",
            )
        )
    if zero is not None and np.any(zero != 0):
        out.append(
            Problem(
                name,
                n.op_type,
                f"zero point {zero.ravel()[np.flatnonzero(zero)[0]]} is not 0; TensorRT quantises symmetrically (zero point 0)",
            )
        )
    scale = consts.get(n.input[1]) if len(n.input) > 1 else None
    if scale is None:
        out.append(
            Problem(name, n.op_type, f"scale {n.input[1] if len(n.input) > 1 else '?'} is not a constant; TensorRT needs it at build time")
        )
    elif scale.size > 1:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        weight = (
            n.op_type == "DequantizeLinear"
            and n.input[0] in consts
            and all(
                c.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and list(c.input).index(n.output[0]) == 1
                for c in consumers.get(n.output[0], [])
            )
        )
        if not weight:
            out.append(
                Problem(
                    name, n.op_type, f"per-channel scale ({scale.size} values) on an activation; TensorRT takes a per-tensor scale there"
                )
            )
        elif axis != 0 and not (axis == 1 and all(c.op_type == "ConvTranspose" for c in consumers.get(n.output[0], []))):
            out.append(
                Problem(
                    name, n.op_type, f"per-channel weight scale along axis {axis}; TensorRT takes it along the output channels (axis 0)"
                )
            )
    return out


def attribute_problems(n: onnx.NodeProto, name: str, consts: dict) -> list[Problem]:
    out = []
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    if n.op_type == "Resize":
        for key, allowed in RESIZE_RULES.items():
            value = attrs.get(key)
            value = value.decode() if isinstance(value, bytes) else value
            if value is not None and value not in allowed:
                out.append(Problem(name, n.op_type, f"{key}={value!r}; the parser takes {', '.join(sorted(allowed))}"))
        if attrs.get("antialias", 0):
            out.append(Problem(name, n.op_type, "antialias=1; the parser does not support antialiasing"))
    index = CONSTANT_AXES.get(n.op_type)
    if index is not None and len(n.input) > index and n.input[index] and n.input[index] not in consts:
        out.append(Problem(name, n.op_type, f"axes {n.input[index]} is computed at run time; the parser needs it constant"))
    return out


def same_type_problems(n: onnx.NodeProto, name: str, types: dict) -> list[Problem]:
    if n.op_type not in SAME_TYPE:
        return []
    picked = SAME_TYPE[n.op_type]
    names = [n.input[i] for i in (picked if picked is not None else range(len(n.input))) if i < len(n.input) and n.input[i]]
    seen = {ONNX_TYPES.get(types.get(x)) for x in names} & FLOATS
    if len(seen) > 1:
        return [Problem(name, n.op_type, f"mixes {' and '.join(sorted(seen))} inputs; a strongly typed network needs a Cast between them")]
    return []


def graph_constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                out[node.output[0]] = numpy_helper.to_array(value)
    return out
