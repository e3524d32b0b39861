"""INT8 Q/DQ on the convolutions with ONNX Runtime's static quantiser: per-channel symmetric
INT8 weights, activations calibrated by percentile, entropy or min/max. Activations are
symmetric INT8 for TensorRT (the only kind it takes); for CPU targets (``placement="cpu"``)
unsigned UINT8 with zero point 0 wherever the tensor cannot be negative, and the u8 x s8
operand order of x86's integer dot products."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..errors import ConfigError
from .calibration import PERCENTILE, CalibrationTiles, TileReader, calibration_group, check_calibration_method
from .profiles import INT8_PLACEMENTS
from .signs import non_negative_tensors


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


class Int8Quantizer:
    """Calibrates once, then quantises any subset of the convolutions from the cached
    ranges, which is what makes per-layer sensitivity affordable. ``ranges`` (tensor name
    -> largest magnitude) replace the calibrated range of those tensors: a quantisation-aware
    checkpoint's own ranges, which its weights were trained to work with. ``placement``:
    ``tensorrt`` (symmetric INT8 activations) or ``cpu`` (UINT8 where non-negative)."""

    def __init__(self, proto: onnx.ModelProto, tiles: list[tuple[np.ndarray, np.ndarray]] | CalibrationTiles, method: str = "percentile", ranges: dict[str, float] | None = None,
                 placement: str = "tensorrt"):
        check_calibration_method(method)
        if placement not in INT8_PLACEMENTS:
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
        self._quantize(tiles if isinstance(tiles, CalibrationTiles) else TileReader(tiles), nodes=None)

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

    def _quantize(self, reader: TileReader | CalibrationTiles | None, nodes: list[str] | None = None, exclude: list[str] | None = None) -> onnx.ModelProto:
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
                    # Calibration group by group (named for min/max, used by every method):
                    # ranges merge across groups, memory stays one group's.
                    **({"CalibStridedMinMax": calibration_group(len(reader))} if reader is not None else {}),
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
