"""The ``fp16`` precision's pass: FP16 with explicit casts (``export.fp16``). TDP_PGF plugin
nodes run the kernel's half path; FP32 islands around them only where the drift requires
them, both figures recorded."""

from __future__ import annotations

from ...drift import over_budget
from ..artifact import Artifact
from ..fp16 import to_fp16


def _short(drift: dict) -> dict:
    return {k: drift[k] for k in ("psnr_delta", "miou_delta", "max_abs_error") if k in drift}


def convert(art: Artifact) -> None:
    art.stage("convert to FP16")
    art.proto = to_fp16(art.proto32)
    if not art.opts.plugin:
        return
    fp16_drift = art.measure(art.proto)
    art.plugin_precision = {"precision": "fp16", "fp16_drift": _short(fp16_drift)}
    if over_budget(fp16_drift, art.budget):
        islands = to_fp16(art.proto32, plugin_fp16=False)
        island_drift = art.measure(islands)
        if not over_budget(island_drift, art.budget):
            art.proto = islands
            art.plugin_precision = {
                "precision": "fp32",
                "fp16_drift": _short(fp16_drift),
                "fp32_drift": _short(island_drift),
                "why": "FP16 plugin nodes broke the drift budget; FP32 islands meet it",
            }
