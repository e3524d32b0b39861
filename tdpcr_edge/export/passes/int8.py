"""The ``int8`` and ``mixed`` precisions' passes: calibrate once (``export.quantizer``), then
INT8 Q/DQ on every convolution, or, for mixed, the fewest convolutions moved to FP16 that
bring the drift within budget. A quantisation-aware checkpoint brings the ranges its weights
were trained with; calibration then only fills in tensors the training did not round."""

from __future__ import annotations

from typing import Callable

import onnx

from ...drift import over_budget
from ..artifact import Artifact
from ..calibration import PERCENTILE
from ..fp16 import fp16_islands
from ..heldout import CALIB_SEED, calibration_tiles, crop
from ..qat_ranges import qat_tensor_ranges
from ..quantizer import Int8Quantizer


def quantize(art: Artifact) -> None:
    _calibrated(art, search=False)


def mixed(art: Artifact) -> None:
    _calibrated(art, search=True)


def _calibrated(art: Artifact, search: bool) -> None:
    opts, c = art.opts, art.ckpt.config
    art.stage(f"calibrate INT8 ({opts.calib_method})")
    calib_tiles = calibration_tiles(opts.calib, opts.calib_tiles, art.tile, art.ckpt.normalization, c.num_classes, CALIB_SEED, split="val")
    qat_ranges = qat_tensor_ranges(art.proto32, art.model, art.ckpt.qat_ranges) if art.ckpt.qat else {}
    quantizer = Int8Quantizer(art.proto32, calib_tiles, opts.calib_method, ranges=qat_ranges, placement=art.placement)
    try:
        if not search:
            art.proto = quantizer.quantize()
        else:
            art.stage(f"per-layer sensitivity of {len(quantizer.convs)} convolutions")
            crops = [crop(t, opts.sensitivity_size, c.multiple) for t in art.eval_tiles[: opts.sensitivity_tiles]]
            art.proto, art.fallback, art.sensitivity = mixed_fallback(quantizer, art.measurer(crops, whole=False), art.measure, art.budget)
        art.calibration = {
            "source": opts.calib,
            "tiles": len(calib_tiles),
            "method": opts.calib_method,
            "percentile": PERCENTILE if opts.calib_method == "percentile" else None,
            "tiles_sha256": calib_tiles.digest(),
            "ranges_sha256": quantizer.calibration_digest(),
            "qat_ranges": len(qat_ranges),  # tensors whose range came from quantisation-aware training
            "placement": art.placement,
        }
    finally:
        quantizer.close()


def mixed_fallback(
    quantizer: Int8Quantizer,
    measure_layer: Callable[[onnx.ModelProto], dict],
    measure_graph: Callable[[onnx.ModelProto], dict],
    budget: dict[str, float],
) -> tuple[onnx.ModelProto, list[str], dict[str, float]]:
    """Per-layer sensitivity, then greedy fallback. The full INT8 graph is tried first: when
    it meets the budget, mixed is pure INT8 and no layer is ranked (empty sensitivity).
    Otherwise each convolution is quantised alone and scored by its drift relative to the
    budget (1.0 = one layer alone uses the whole budget), and the most sensitive layers move
    to FP16, doubling the count each round, until the graph meets the budget. Single layers
    are scored on a small tile set (``measure_layer``); whole graphs on the set that gates
    the export (``measure_graph``)."""

    def score(drift: dict) -> float:
        parts = [abs(drift["max_abs_error"] if k == "max_abs" else drift[f"{k}_delta"]) / v for k, v in budget.items() if v > 0]
        return max(parts, default=0.0)

    candidate = quantizer.quantize()
    if not over_budget(measure_graph(candidate), budget):
        return candidate, [], {}
    sensitivity = {conv: score(measure_layer(quantizer.quantize(nodes=[conv]))) for conv in quantizer.convs}
    order = sorted(sensitivity, key=sensitivity.get, reverse=True)
    fallback: list[str] = []
    while over_budget(measure_graph(candidate), budget) and len(fallback) < len(order):
        fallback = order[: max(1, 2 * len(fallback))]
        candidate = fp16_islands(quantizer.quantize(exclude=fallback), fallback)
    return candidate, fallback, sensitivity
