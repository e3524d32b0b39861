"""How far a deployed graph strays from torch FP32: the same metrics on the same held-out
tiles for both, and the raw output error between them. Comparison is kept apart from
execution (as Polygraphy's comparator is): runners produce, this module judges."""

from __future__ import annotations

import numpy as np

from .data.scenes import SceneArrays
from .errors import ConfigError
from .scoring import RunModel, score

BUDGET_KEYS = ("psnr", "ssim", "sam", "miou", "max_abs")
DEFAULT_BUDGET = {"psnr": 0.3, "miou": 1.0}


def parse_budget(text: str | None) -> dict[str, float]:
    """``psnr=0.3,miou=1.0`` -> {"psnr": 0.3, "miou": 1.0}; psnr in dB, miou in points,
    ssim and sam in their units, max_abs on the reconstruction."""
    if not text:
        return dict(DEFAULT_BUDGET)
    budget = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in BUDGET_KEYS:
            raise ConfigError(f"unknown drift budget key {key!r}: use {', '.join(BUDGET_KEYS)}, e.g. psnr=0.3,miou=1.0")
        try:
            budget[key] = float(value)
        except ValueError:
            raise ConfigError(f"drift budget {part!r} is not KEY=NUMBER") from None
    return budget


def measure_drift(
    reference: RunModel,
    candidate: RunModel,
    scenes: list[SceneArrays],
    num_classes: int,
    reference_cache: tuple | None = None,
) -> tuple[dict, tuple]:
    """Deltas are candidate minus reference (negative PSNR delta: the candidate is worse).
    Returns the drift dict and the reference results, reusable for the next candidate."""
    if reference_cache is None:
        done = score(reference, scenes, num_classes, keep_outputs=True, inputs=False)
        reference_cache = (done.evaluation, done.outputs)
    ref_scores, ref_outputs = reference_cache
    cand = score(candidate, scenes, num_classes, keep_outputs=True, inputs=False)
    cand_outputs = cand.outputs
    r, c = ref_scores.summary(), cand.evaluation.summary()
    max_abs = {k: 0.0 for k in ref_outputs[0]}
    sum_abs, count = 0.0, 0
    agree, total = 0, 0
    for ro, co in zip(ref_outputs, cand_outputs):
        for k in max_abs:
            max_abs[k] = max(max_abs[k], float(np.abs(ro[k] - co[k]).max()))
        diff = np.abs(ro["reconstruction"] - co["reconstruction"])
        sum_abs += float(diff.sum())
        count += diff.size
        if "segmentation" in ro:
            agree += int((ro["segmentation"].argmax(1) == co["segmentation"].argmax(1)).sum())
            total += ro["segmentation"][:, 0].size
    drift = {
        "psnr_delta": c["psnr"] - r["psnr"],
        "ssim_delta": c["ssim"] - r["ssim"],
        "sam_delta": c["sam"] - r["sam"],
        # None: a model without segmentation has no mIoU (printed "n/a", budgets skip it)
        "miou_delta": c["miou"] - r["miou"] if "miou" in r and "miou" in c else None,
        "max_abs_error": max_abs["reconstruction"],
        "mean_abs_error": sum_abs / max(count, 1),
        "max_abs_error_by_output": max_abs,
        "class_agreement": 100.0 * agree / total if total else None,
        "reference": r,
        "candidate": c,
        "tiles": len(scenes),
    }
    return drift, reference_cache


def over_budget(drift: dict, budget: dict[str, float]) -> list[str]:
    """Human-readable list of the budget lines the drift breaks (empty when inside)."""
    broken = []
    for key, limit in budget.items():
        value = drift["max_abs_error"] if key == "max_abs" else drift.get(f"{key}_delta")
        if value is not None and abs(value) > limit:
            broken.append(f"{key} {value:+.4g} (budget {limit:g})")
    return broken


def miou_text(delta: float | None, unit: str = " pt") -> str:
    """A mIoU drift as printed: signed, or "n/a (no segmentation)" for a model without one."""
    return "n/a (no segmentation)" if delta is None else f"{delta:+.2f}{unit}"
