"""INT8 Q/DQ on the convolutions with ONNX Runtime's static quantiser: per-channel symmetric
INT8 weights, activations calibrated by percentile, entropy or min/max. Activations are
symmetric INT8 for TensorRT (the only kind it takes); for CPU targets (``placement="cpu"``)
unsigned UINT8 with zero point 0 wherever the tensor cannot be negative, and the u8 x s8
operand order of x86's integer dot products.

``placement="cpu-no-vnni"`` is for x86 CPUs without an INT8 dot product (AVX2, AVX-512 without
VNNI). There oneDNN multiplies u8 x s8 byte pairs with ``vpmaddubsw``, whose pair sums
a1*w1 + a2*w2 saturate at 32767 (255 x 127 x 2 reaches 64770), and a signed activation is
shifted by +128 into u8 first. So every INT8 convolution of this placement keeps each pair
within 16 bits: its input is unsigned and uses 7 of UINT8's bits ([0, 127], zero point 0,
the resolution symmetric INT8 gives a non-negative tensor) against full INT8 weights
(2 x 127 x 127 = 32258). The few convolutions whose input can be negative stay in float:
with 7-bit weights instead (|w| <= 64) they would fit too, but cost most of the mIoU budget.
``pair_bounds`` reads the bound off a quantised graph."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..backends.targets import INT8_PLACEMENTS, NO_VNNI_PLACEMENT, UNSIGNED_PLACEMENTS
from ..errors import ConfigError
from .calibration import PERCENTILE, CalibrationTiles, TileReader, calibration_group, check_calibration_method
from .signs import non_negative_tensors

# Without VNNI, x86 sums each pair of u8 x s8 products into a saturating signed 16-bit integer.
PAIR_SUM_LIMIT = 32767
# cpu-no-vnni's unsigned activations: the largest step; the scale spans the calibrated range in
# 127 steps instead of 255.
UNSIGNED_7BIT_MAX = 127


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


def _activation_qdq(proto: onnx.ModelProto) -> list[tuple[onnx.NodeProto, onnx.NodeProto, onnx.NodeProto]]:
    """(QuantizeLinear, DequantizeLinear, Conv) for every INT8 convolution's input."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    out = []
    for node in proto.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        w, dq = producers.get(node.input[1]), producers.get(node.input[0])
        if w is None or w.op_type != "DequantizeLinear" or dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            out.append((q, dq, node))
    return out


def _upper_bound(proto: onnx.ModelProto, name: str) -> float | None:
    """The largest value ``name`` can take, when its producer says so: a Clip with a constant
    maximum, or a Sigmoid or Softmax (1). None when nothing bounds it."""
    from onnx import numpy_helper

    producers = {o: n for n in proto.graph.node for o in n.output}
    consts = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type in ("Sigmoid", "Softmax"):
        return 1.0
    if node.op_type == "Clip":
        high = node.input[2] if len(node.input) > 2 else ""
        return float(np.max(consts[high])) if high in consts else None
    return None


def _seven_bit_unsigned(proto: onnx.ModelProto) -> onnx.ModelProto:
    """cpu-no-vnni: every UINT8 convolution input on [0, 127]. Its scale is stretched by
    255/127, so the calibrated range spans 127 steps (the resolution symmetric INT8 gives a
    non-negative tensor); a Clip at 127 steps goes before its QuantizeLinear unless the tensor
    is already bounded there (the trained range's Clip of a quantisation-aware checkpoint, a
    softmax), since a value past the calibrated range would otherwise round to 128..255."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    pairs = [
        (q, dq)
        for q, dq, _ in _activation_qdq(proto)
        if len(q.input) > 2 and q.input[2] in inits and inits[q.input[2]].data_type == onnx.TensorProto.UINT8
    ]
    for name in {n for q, dq in pairs for n in (q.input[1], dq.input[1])}:
        scale = numpy_helper.to_array(inits[name]).astype(np.float32)
        inits[name].CopyFrom(numpy_helper.from_array((scale * np.float32(255 / UNSIGNED_7BIT_MAX)).astype(np.float32), name))
    zero = "tdpcr_7bit_min"
    clips: dict[tuple[str, str], str] = {}
    before: dict[str, list[onnx.NodeProto]] = {}
    for q, _ in pairs:
        scale = float(numpy_helper.to_array(inits[q.input[1]]))
        high = _upper_bound(proto, q.input[0])
        if high is not None and high / scale < UNSIGNED_7BIT_MAX + 0.5:
            continue  # rounds to 127 at most already
        key = (q.input[0], q.input[1])
        if key not in clips:
            clips[key] = f"{q.input[0]}_7bit"
            bound = f"{clips[key]}_max"
            proto.graph.initializer.append(numpy_helper.from_array(np.array(UNSIGNED_7BIT_MAX * scale, np.float32), bound))
            before.setdefault(q.name, []).append(helper.make_node("Clip", [q.input[0], zero, bound], [clips[key]], name=f"{q.name}_clip7"))
        q.input[0] = clips[key]
    if before:
        proto.graph.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), zero))
        nodes = [m for n in proto.graph.node for m in (*before.get(n.name, []), n)]
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
    return proto


def pair_bounds(proto: onnx.ModelProto) -> dict[str, dict]:
    """Per INT8 convolution, what its quantisation parameters allow a u8 x s8 byte pair to
    sum to on a CPU without VNNI: ``activation`` is the largest u8 operand (an unsigned input's
    largest step, by the bound upstream of its QuantizeLinear, else 255; a signed input shifted
    by +128 reaches 255), ``weight`` the largest |w| step, ``pair`` 2 x their product."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    out = {}
    for q, _, conv in _activation_qdq(proto):
        zero, scale = inits[q.input[2]], float(inits[q.input[1]])
        activation = 255
        if zero.dtype == np.uint8:
            high = _upper_bound(proto, q.input[0])
            steps = np.round(high / scale) + int(zero) if high is not None else 255
            activation = int(min(255, steps))
        w = inits[producers[conv.input[1]].input[0]].astype(np.int32)
        weight = int(np.abs(w).max())
        out[conv.name] = {
            "input": "uint8" if zero.dtype == np.uint8 else "int8",
            "activation": activation,
            "weight": weight,
            "pair": 2 * activation * weight,
        }
    return out


class Int8Quantizer:
    """Calibrates once, then quantises any subset of the convolutions from the cached
    ranges, which is what makes per-layer sensitivity affordable. ``ranges`` (tensor name
    -> largest magnitude) replace the calibrated range of those tensors: a quantisation-aware
    checkpoint's own ranges, which its weights were trained to work with. ``placement``:
    ``tensorrt`` (symmetric INT8 activations), ``cpu`` (UINT8 where non-negative) or
    ``cpu-no-vnni`` (as cpu, with every u8 x s8 pair sum within 16 bits: 7-bit UINT8
    activations; the convolutions whose input can be negative stay in float, listed in
    ``float_convs``, and are never offered to the mixed search)."""

    def __init__(
        self,
        proto: onnx.ModelProto,
        tiles: list[tuple[np.ndarray, np.ndarray]] | CalibrationTiles,
        method: str = "percentile",
        ranges: dict[str, float] | None = None,
        placement: str = "tensorrt",
    ):
        check_calibration_method(method)
        if placement not in INT8_PLACEMENTS:
            raise ConfigError(f"unknown INT8 placement {placement!r}: choose one of {', '.join(INT8_PLACEMENTS)}")
        self.placement = placement
        if not tiles:
            raise ConfigError("no calibration tiles; pass --calib with at least one scene")
        from ..backends.tdp_pgf_op import has_plugin_nodes, to_ort_domain

        self.method = method
        self.ranges = dict(ranges or {})
        self.plugin = has_plugin_nodes(proto)
        self.tmp = tempfile.TemporaryDirectory(prefix="tdpcr-int8-")
        self.source = Path(self.tmp.name) / "fp32.onnx"
        self.cache = Path(self.tmp.name) / "calibration.json"
        onnx.save(to_ort_domain(proto) if self.plugin else proto, str(self.source))
        convs = [n for n in proto.graph.node if n.op_type == "Conv"]
        # cpu-no-vnni: a convolution whose input can be negative would feed the CPU's u8 x s8
        # pairs a shifted, full-range u8; it stays in float.
        unsigned = non_negative_tensors(proto) if placement == NO_VNNI_PLACEMENT else None
        self.float_convs = [n.name for n in convs if unsigned is not None and n.input[0] not in unsigned]
        self.convs = [n.name for n in convs if n.name not in self.float_convs]
        self.overrides = self._overrides(proto)
        self._quantize(tiles if isinstance(tiles, CalibrationTiles) else TileReader(tiles), nodes=None)

    def _overrides(self, proto: onnx.ModelProto) -> dict[str, list[dict]]:
        """Per-tensor quantisation settings: trained ranges, and for the CPU placements the
        unsigned type on every convolution input that cannot be negative."""
        from onnxruntime.quantization import QuantType

        over = {t: {"rmin": np.float32(-r), "rmax": np.float32(r)} for t, r in self.ranges.items()}
        if self.placement in UNSIGNED_PLACEMENTS:
            unsigned = non_negative_tensors(proto)
            for node in proto.graph.node:
                x = node.input[0] if node.op_type == "Conv" else None
                if x in unsigned:
                    # rmin 0 gives zero point 0: the grid starts where the data does.
                    over[x] = {**over.get(x, {}), "quant_type": QuantType.QUInt8, "symmetric": False, "rmin": np.float32(0.0)}
        return {t: [o] for t, o in over.items()}

    def _quantize(
        self, reader: TileReader | CalibrationTiles | None, nodes: list[str] | None = None, exclude: list[str] | None = None
    ) -> onnx.ModelProto:
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        from ..backends.tdp_pgf_op import from_ort_domain, sessions_with_plugin

        out = Path(self.tmp.name) / "int8.onnx"
        if self.float_convs:
            nodes = [n for n in nodes if n not in self.float_convs] if nodes is not None else None
            exclude = list(exclude or []) + self.float_convs
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}[
            self.method
        ]
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
                    # Calibration group by group (named for min/max, used by every method):
                    # ranges merge across groups, memory stays one group's.
                    **({"CalibStridedMinMax": calibration_group(len(reader))} if reader is not None else {}),
                },
                calibration_cache_path=str(self.cache),
            )
        proto = _float_outside_convolutions(onnx.load(str(out)))
        if self.placement == NO_VNNI_PLACEMENT:
            proto = _seven_bit_unsigned(proto)
        return from_ort_domain(proto) if self.plugin else proto

    def quantize(self, nodes: list[str] | None = None, exclude: list[str] | None = None) -> onnx.ModelProto:
        return self._quantize(None, nodes=nodes, exclude=exclude)

    def calibration_digest(self) -> str:
        import hashlib

        return hashlib.sha256(self.cache.read_bytes()).hexdigest()

    def close(self) -> None:
        self.tmp.cleanup()
