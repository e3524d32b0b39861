"""The gate: a graph the target cannot take is refused before its drift is measured; then the
drift against torch FP32 on the held-out tiles, judged against the budget. Over budget, the
export stops here (exit 3) unless ``--allow-drift`` keeps it."""

from __future__ import annotations

from ...drift import over_budget
from ...errors import DriftBudgetError
from ..artifact import Artifact


def run(art: Artifact) -> None:
    if art.profile is not None:
        from ...backends.trt.check import check_graph, refuse

        refuse(check_graph(art.proto, art.profile), f"{art.opts.out}", art.profile)
    art.stage("measure drift")
    drift = art.measure(art.proto)
    broken = over_budget(drift, art.budget)
    drift.update(
        {
            "budget": art.budget,
            "within_budget": not broken,
            "precision": art.precision,
            "eval_data": art.opts.eval_data,
            "backend": art.backend,
            "inference_precision": runtime_precision(art),
        }
    )
    art.drift = drift
    if broken and not art.opts.allow_drift:
        raise DriftBudgetError(
            f"{art.opts.out}: {art.precision} drift on {art.backend} over budget: {'; '.join(broken)}; nothing written. "
            "Loosen --drift-budget, try --precision mixed, train with --qat, or pass --allow-drift to keep it"
        )


def runtime_precision(art: Artifact) -> str:
    """What the manifest calls the runtime's precision: bf16 for the FP32 graph OpenVINO
    computes in BF16, else the graph's own types."""
    return "bf16" if art.precision == "bf16" else "graph"
