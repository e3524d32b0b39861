"""The bridge from quantisation-aware training to the ONNX graph: a QAT checkpoint's trained
activation ranges, keyed by the graph tensors they apply to."""

from __future__ import annotations

import numpy as np
import onnx


def qat_tensor_ranges(proto: onnx.ModelProto, model, ranges: dict[str, float]) -> dict[str, float]:
    """The activation ranges a quantisation-aware run trained with (by convolution module
    name, ``Checkpoint.qat_ranges``), keyed by the ONNX tensor each Conv node reads.

    Nodes are matched to modules by their weights. The export folds batch norm into the
    weights, which scales each output channel (sign included), so weights are compared
    as magnitudes normalised per output channel. A node that matches no module, or more
    than one, keeps its calibrated range."""
    import torch
    from onnx import numpy_helper

    def signature(w: np.ndarray) -> np.ndarray:
        a = np.abs(w.reshape(w.shape[0], -1)).astype(np.float64)
        return a / np.maximum(a.max(axis=1, keepdims=True), 1e-30)

    modules = [
        (name, signature(m.weight.detach().cpu().numpy()))
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d) and ranges.get(name, 0.0) > 0
    ]
    inits = {i.name: i for i in proto.graph.initializer}
    out: dict[str, float] = {}
    for node in proto.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = signature(numpy_helper.to_array(inits[node.input[1]]))
        hits = [name for name, sig in modules if sig.shape == w.shape and np.allclose(sig, w, atol=1e-4)]
        if len(hits) == 1:
            out[node.input[0]] = max(out.get(node.input[0], 0.0), ranges[hits[0]])
    return out
