"""Precision passes over an FP32 ONNX graph. TensorRT 10/11 networks are strongly typed,
so precision lives in the graph: FP16 as explicit casts, INT8 as Q/DQ nodes.

- fp16: everything FP16 except the precision-sensitive nodes (reductions, softmax,
  normalisation statistics, and the residual add and clip that produce the reconstruction),
  with FP32 graph inputs and outputs. TDP_PGF nodes take FP16 (the plugin's half path);
  export keeps them FP32 only where the measured drift requires it.
- int8: Q/DQ on convolutions, per-channel symmetric INT8 weights, calibrated by percentile
  or entropy with ONNX Runtime's static quantiser. Activations: symmetric INT8 for TensorRT
  (the only kind it takes); for CPU targets (``placement="cpu"``) unsigned UINT8 with zero
  point 0 wherever the tensor cannot be negative, twice the resolution over the same range,
  and the u8 x s8 operand order of x86's integer dot products.
- mixed: int8, then the convolutions whose measured sensitivity breaks the drift budget
  run in FP16 instead (see ``mixed_fallback`` in export.pipeline).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

from ..errors import ConfigError
from ..runtime.combos import PRECISIONS
from .plugin_op import OP_TYPE

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
FP32_OPS = ("ReduceMean", "GlobalAveragePool", "Softmax", "Einsum")
PERCENTILE = 99.99


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


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
    """Cast any FP16 graph output back to FP32 so every artifact has one interface."""
    f16 = onnx.TensorProto.FLOAT16
    for out in proto.graph.output:
        if out.type.tensor_type.elem_type != f16:
            continue
        inner = out.name + "_fp16"
        for node in proto.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        proto.graph.node.append(onnx.helper.make_node("Cast", [inner], [out.name], to=onnx.TensorProto.FLOAT, name=out.name + "_to_fp32"))
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
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
    return _float32_outputs(converted)


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
                raise ValueError(f"{node.name}: parameter {p} is not an initializer; cannot make an FP16 island")
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


def check_calibration_method(method: str) -> str:
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}: choose one of {', '.join(CALIBRATION_METHODS)}")
    return method


class TileReader:
    """Calibration tiles for ONNX Runtime's calibrator, one tile per step."""

    def __init__(self, tiles: list[tuple[np.ndarray, np.ndarray]]):
        self.tiles = tiles
        self.rewind()

    def rewind(self) -> None:
        self._it = iter(self.tiles)

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else {"optical": item[0][None], "sar": item[1][None]}

    def __len__(self) -> int:
        return len(self.tiles)


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

    modules = [(name, signature(m.weight.detach().cpu().numpy())) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Conv2d) and ranges.get(name, 0.0) > 0]
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


def _float_outside_convolutions(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Rewire every consumer of a Q/DQ-rounded activation but the INT8 convolutions to the
    float tensor. The quantiser rounds a tensor for all its consumers when one convolution reads
    it (the residual add would add an INT8-rounded cloudy image, PGF would blend rounded
    features); only the convolutions run in INT8, as quantisation-aware training simulates
    and as TensorRT keeps an elementwise consumer of a Q/DQ'd tensor in float."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    weights = {i.name for i in proto.graph.initializer}

    def int8_conv(node: onnx.NodeProto) -> bool:
        w = producers.get(node.input[1]) if node.op_type == "Conv" else None
        return w is not None and w.op_type == "DequantizeLinear"

    for node in proto.graph.node:
        # A convolution left out of INT8 (mixed precision's FP16 fallback) reads float too.
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or int8_conv(node):
            continue
        for k, name in enumerate(node.input):
            dq = producers.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in weights:
                continue
            q = producers.get(dq.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[k] = q.input[0]
    return proto


# Ops whose output is non-negative whenever their data inputs are (Max needs only one).
_SIGN_PRESERVING = ("Concat", "Resize", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Mul", "Reshape", "Transpose", "Slice", "Identity", "Pad")


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


class Int8Quantizer:
    """Calibrates once, then quantises any subset of the convolutions from the cached
    ranges, which is what makes per-layer sensitivity affordable. ``ranges`` (tensor name
    -> largest magnitude) replace the calibrated range of those tensors: a quantisation-aware
    checkpoint's own ranges, which its weights were trained to work with. ``placement``:
    ``tensorrt`` (symmetric INT8 activations) or ``cpu`` (UINT8 where non-negative)."""

    def __init__(self, proto: onnx.ModelProto, tiles: list[tuple[np.ndarray, np.ndarray]], method: str = "percentile", ranges: dict[str, float] | None = None,
                 placement: str = "tensorrt"):
        check_calibration_method(method)
        if placement not in ("tensorrt", "cpu"):
            raise ConfigError(f"unknown INT8 placement {placement!r}: choose tensorrt or cpu")
        self.placement = placement
        if not tiles:
            raise ConfigError("no calibration tiles; pass --calib with at least one scene")
        from ..runtime.ort_ops import has_plugin_nodes, to_ort_domain

        self.method = method
        self.ranges = dict(ranges or {})
        self.plugin = has_plugin_nodes(proto)
        self.tmp = tempfile.TemporaryDirectory(prefix="tdpcr-int8-")
        self.source = Path(self.tmp.name) / "fp32.onnx"
        self.cache = Path(self.tmp.name) / "calibration.json"
        onnx.save(to_ort_domain(proto) if self.plugin else proto, str(self.source))
        self.convs = [n.name for n in proto.graph.node if n.op_type == "Conv"]
        self.overrides = self._overrides(proto)
        self._quantize(TileReader(tiles), nodes=None)

    def _overrides(self, proto: onnx.ModelProto) -> dict[str, list[dict]]:
        """Per-tensor quantisation settings: trained ranges, and for the CPU placement the
        unsigned type on every convolution input that cannot be negative."""
        from onnxruntime.quantization import QuantType

        over = {t: {"rmin": np.float32(-r), "rmax": np.float32(r)} for t, r in self.ranges.items()}
        if self.placement == "cpu":
            unsigned = non_negative_tensors(proto)
            for node in proto.graph.node:
                x = node.input[0] if node.op_type == "Conv" else None
                if x in unsigned:
                    # rmin 0 gives zero point 0: the grid starts where the data does.
                    over[x] = {**over.get(x, {}), "quant_type": QuantType.QUInt8, "symmetric": False, "rmin": np.float32(0.0)}
        return {t: [o] for t, o in over.items()}

    def _quantize(self, reader: TileReader | None, nodes: list[str] | None = None, exclude: list[str] | None = None) -> onnx.ModelProto:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from ..runtime.ort_ops import from_ort_domain, sessions_with_plugin

        out = Path(self.tmp.name) / "int8.onnx"
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}[self.method]
        plugin_sessions = sessions_with_plugin() if self.plugin else contextlib.nullcontext()
        # The calibrator narrates on stdout; keep the CLI's output ours.
        from .onnx_graph import _quiet

        # ONNX Runtime's quantiser logs advice on the root logger; keep the CLI's output ours.
        with plugin_sessions, contextlib.redirect_stdout(io.StringIO()), _quiet(""):
            quantize_static(
                str(self.source),
                str(out),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
                nodes_to_exclude=exclude,
                calibrate_method=method,
                # Biases stay float: TensorRT takes INT8 Q/DQ, not INT32 bias DequantizeLinear.
                extra_options={
                    "WeightSymmetric": True,
                    "ActivationSymmetric": True,
                    "CalibPercentile": PERCENTILE,
                    "QuantizeBias": False,
                    # Q/DQ where TensorRT reads INT8: convolution inputs and weights. A Q/DQ
                    # on each convolution's output as well (the quantiser's default) rounds
                    # the reconstruction residual and the class logits themselves to INT8.
                    "OpTypesToExcludeOutputQuantization": ["Conv"],
                    # One pair per convolution, as TensorRT wants; _float_outside_convolutions
                    # then keeps every other consumer on the float tensor.
                    "DedicatedQDQPair": True,
                    "TensorQuantOverrides": self.overrides,
                },
                calibration_cache_path=str(self.cache),
            )
        proto = _float_outside_convolutions(onnx.load(str(out)))
        return from_ort_domain(proto) if self.plugin else proto

    def quantize(self, nodes: list[str] | None = None, exclude: list[str] | None = None) -> onnx.ModelProto:
        return self._quantize(None, nodes=nodes, exclude=exclude)

    def calibration_digest(self) -> str:
        import hashlib

        return hashlib.sha256(self.cache.read_bytes()).hexdigest()

    def close(self) -> None:
        self.tmp.cleanup()
