"""Reading a report's rows: their labels, which are tied in latency, the fastest within the
drift budget (what a scene stream deploys), and the Pareto front of accuracy against latency.
"""

from __future__ import annotations

# Rows a scene stream can reproduce: a deployment choice, not a compiler or a peer (OpenVINO's defaults, NNCF's INT8).
DEPLOYABLE_VARIANTS = ("", "eager")


def tied(a: dict, b: dict) -> bool:
    """Two rows whose latencies a noisy machine cannot tell apart: their p25-p75 ranges
    overlap, or the ranges of their undisturbed rounds' medians do (how far the host moved
    between the rounds of blocks, ``timing.time_rows``), or they run the same graph on the same backend
    (INT8 and a mixed search that ended on pure INT8). Rows of reports without ranges are
    tied only with themselves."""
    if a is b:
        return True
    if (
        a.get("graph_sha256")
        and a.get("graph_sha256") == b.get("graph_sha256")
        and a.get("backend") == b.get("backend")
        and a.get("variant", "") == b.get("variant", "")
    ):
        return True
    ra, rb = _kept_rounds(a), _kept_rounds(b)
    if len(ra) > 1 and len(rb) > 1 and min(ra) <= max(rb) and min(rb) <= max(ra):
        return True
    if None in (a.get("latency_ms_p25"), a.get("latency_ms_p75"), b.get("latency_ms_p25"), b.get("latency_ms_p75")):
        return False
    return a["latency_ms_p25"] <= b["latency_ms_p75"] and b["latency_ms_p25"] <= a["latency_ms_p75"]


def _kept_rounds(row: dict) -> list[float]:
    """The medians of a row's undisturbed rounds (all of them in reports before rounds were kept)."""
    rounds = row.get("latency_ms_rounds") or []
    keep = row.get("rounds_kept")
    return [rounds[i] for i in keep] if isinstance(keep, list) else list(rounds)


def _deployable(report: dict, device: str | None = None) -> list[dict]:
    return [
        r
        for r in report["rows"]
        if r.get("within_budget")
        and r.get("variant", "") in DEPLOYABLE_VARIANTS
        and r.get("latency_ms_p50") is not None
        and (device is None or r.get("device", "cpu") == device)
    ]


def fastest_tie(report: dict, device: str | None = None) -> list[dict]:
    """The rows tied with the lowest-latency deployable row within the budget (itself first)."""
    rows = _deployable(report, device)
    if not rows:
        return []
    best = min(rows, key=lambda r: r["latency_ms_p50"])
    return [best] + [r for r in rows if r is not best and tied(r, best)]


def fastest_within_budget(report: dict, device: str | None = None) -> dict | None:
    """The row a scene stream should run: among rows the stream runs as measured (eager torch,
    or an artifact on its backend) whose own drift is within the budget, the fastest, or of
    the rows tied with it, the one with the least drift (PSNR, then mIoU), then the smallest
    model, then the first in the report's order (the registry's): tied latencies cannot tell
    rows apart, so two runs name the same row even when it is one graph under two names (INT8
    and a mixed search that kept every convolution in INT8). ``device`` narrows it."""
    tie = fastest_tie(report, device)
    if not tie:
        return None
    order = {id(r): i for i, r in enumerate(report["rows"])}
    return min(
        tie, key=lambda r: (abs(r.get("psnr_delta") or 0.0), abs(r.get("miou_delta") or 0.0), r.get("model_mb") or 0.0, order[id(r)])
    )


def row_label(row: dict) -> str:
    """backend, precision (variant, device); led by the model's name in a report of several."""
    parts = ([row["model"]] if row.get("model") else []) + [row["backend"], row["precision"]]
    if row.get("variant") and row["variant"] != "eager":
        parts.append(row["variant"])
    if row["backend"] == "torch":
        parts.append(row.get("device", "cpu"))
    return " ".join(parts)


# Accuracies closer than the precision the table prints (PSNR in dB, mIoU in points) count as
# equal: the front must not reward a slower row for a difference the report cannot show.
PARETO_RESOLUTION = {"psnr": 0.01, "miou": 0.1}


def _alike(a: float, b: float, metric: str) -> bool:
    # Shaved by a part in a billion so values a whole printed step apart, which floating
    # point may put a hair under the step, still count as different.
    return a == b or abs(a - b) < PARETO_RESOLUTION.get(metric, 0.0) * (1 - 1e-9)


def pareto_front(rows: list[dict], metric: str, latency: str = "latency_ms_p50") -> list[int]:
    """Indices of the rows on the front, fastest first: a row is on it when it is measurably
    faster than every other row at least as accurate. Accuracies within
    ``PARETO_RESOLUTION[metric]`` of each other count as equal, and latencies ``tied`` (inside
    each other's spread) as equal: a row tied in latency with a more accurate one is off the
    front, and of rows alike in both only the first in the report's order stays. Rows lacking
    either value are out, and so are rows over the drift budget: the front is what one may
    deploy."""
    pts = [
        (i, r[latency], r[metric])
        for i, r in enumerate(rows)
        if r.get(latency) is not None and r.get(metric) is not None and r.get("within_budget", True) is not False
    ]

    def beaten(i: int, lat: float, acc: float) -> bool:
        for j, lat2, acc2 in pts:
            alike = _alike(acc, acc2, metric)
            if j == i or not (alike or acc2 > acc):
                continue
            same_speed = lat2 == lat or tied(rows[i], rows[j])
            if (lat2 < lat and not same_speed) or (same_speed and (not alike or j < i)):
                return True
        return False

    return sorted((i for i, lat, acc in pts if not beaten(i, lat, acc)), key=lambda i: rows[i][latency])


def by_model(report: dict) -> list[tuple[str | None, dict]]:
    """The report as one report per model (its rows alone), or itself when it holds one model:
    the fastest row within budget is chosen within a model, each judged against its own FP32."""
    models = [m["label"] for m in report.get("models") or []]
    if not models:
        return [(None, report)]
    return [(m, {**report, "rows": [r for r in report["rows"] if r.get("model") == m]}) for m in models]
