"""Sign analysis: which tensors of a graph cannot be negative, by its structure. The CPU INT8
placement gives those UINT8 activations (twice the resolution over the same range)."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx

# Ops whose output is non-negative whenever their data inputs are (Max needs only one).
_SIGN_PRESERVING = (
    "Concat",
    "Resize",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Mul",
    "Reshape",
    "Transpose",
    "Slice",
    "Identity",
    "Pad",
)


def non_negative_tensors(proto: onnx.ModelProto, inputs: Iterable[str] = ("optical", "sar")) -> set[str]:
    """The tensors that cannot be negative, by the graph's structure: the normalised inputs
    (in [0, 1] by the model's convention), outputs of Relu, Sigmoid, Softmax and of Clip
    with a non-negative minimum, and what sign-preserving ops make of non-negative tensors.
    Structural, not measured: a tensor calibration merely saw positive stays signed."""
    from onnx import numpy_helper

    producers = {o: n for n in proto.graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    memo: dict[str, bool] = {name: True for name in inputs}

    def non_negative(name: str) -> bool:
        if name in memo:
            return memo[name]
        memo[name] = False  # cycles cannot occur in ONNX, but a miss must not recurse forever
        if name in consts:
            result = bool(np.all(consts[name] >= 0))
        else:
            node = producers.get(name)
            if node is None:
                result = False
            elif node.op_type in ("Relu", "Sigmoid", "Softmax"):
                result = True
            elif node.op_type == "Clip":
                low = node.input[1] if len(node.input) > 1 else ""
                result = (bool(low) and low in consts and float(np.min(consts[low])) >= 0) or non_negative(node.input[0])
            elif node.op_type == "Max":
                result = any(non_negative(i) for i in node.input if i)
            elif node.op_type in _SIGN_PRESERVING:
                data = node.input[:1] if node.op_type in ("Resize", "Reshape", "Slice", "Pad") else node.input
                result = all(non_negative(i) for i in data if i)
            else:
                result = False
        memo[name] = result
        return result

    return {name for n in proto.graph.node for name in n.input if name and non_negative(name)}
