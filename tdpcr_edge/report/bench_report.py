"""The accuracy-against-latency report: ``report.json``, ``report.md`` (the same as a
table) and ``report.png`` (PSNR and mIoU against p50 latency, the Pareto front marked).

A report is ``{"rows": [...], "skipped": [...], "device": ..., "method": ...}``; it comes
from ``tdpcr-edge bench`` or from pytest-benchmark's ``--benchmark-json`` output
(``from_benchmark_json``), so both paths give the same files.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from ..errors import DataError
from ..io_utils import atomic_path, write_json


# Rows a scene stream can reproduce: a deployment choice, not a compiler or a peer's defaults.
DEPLOYABLE_VARIANTS = ("", "eager")


def tied(a: dict, b: dict) -> bool:
    """Two rows whose latencies a noisy machine cannot tell apart: their p25-p75 ranges
    overlap, or they run the same graph on the same backend (INT8 and a mixed search that
    ended on pure INT8). Rows of reports without ranges are tied only with themselves."""
    if a is b:
        return True
    if a.get("graph_sha256") and a.get("graph_sha256") == b.get("graph_sha256") and a.get("backend") == b.get("backend") \
            and a.get("variant", "") == b.get("variant", ""):
        return True
    if None in (a.get("latency_ms_p25"), a.get("latency_ms_p75"), b.get("latency_ms_p25"), b.get("latency_ms_p75")):
        return False
    return a["latency_ms_p25"] <= b["latency_ms_p75"] and b["latency_ms_p25"] <= a["latency_ms_p75"]


def _deployable(report: dict, device: str | None = None) -> list[dict]:
    return [r for r in report["rows"] if r.get("within_budget") and r.get("variant", "") in DEPLOYABLE_VARIANTS
            and r.get("latency_ms_p50") is not None and (device is None or r.get("device", "cpu") == device)]


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
    model. ``device`` narrows it."""
    tie = fastest_tie(report, device)
    if not tie:
        return None
    return min(tie, key=lambda r: (abs(r.get("psnr_delta") or 0.0), abs(r.get("miou_delta") or 0.0), r.get("model_mb") or 0.0, r["latency_ms_p50"]))


def row_label(row: dict) -> str:
    parts = [row["backend"], row["precision"]]
    if row.get("variant") and row["variant"] != "eager":
        parts.append(row["variant"])
    if row["backend"] == "torch":
        parts.append(row.get("device", "cpu"))
    return " ".join(parts)


def pareto_front(rows: list[dict], metric: str, latency: str = "latency_ms_p50") -> list[int]:
    """Indices of the rows no other row beats: none is at least as fast and at least as
    accurate while strictly better in one of the two. Rows lacking either value are out, and
    so are rows over the drift budget: the front is what one may deploy."""
    pts = [(i, r[latency], r[metric]) for i, r in enumerate(rows)
           if r.get(latency) is not None and r.get(metric) is not None and r.get("within_budget", True) is not False]
    front = []
    for i, lat, acc in pts:
        dominated = any(lat2 <= lat and acc2 >= acc and (lat2 < lat or acc2 > acc) for j, lat2, acc2 in pts if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: rows[i][latency])


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def budget_mark(row: dict) -> str:
    """ok, OVER, or - when the row's drift was not judged (pytest-benchmark input)."""
    verdict = row.get("within_budget")
    return "-" if verdict is None else "ok" if verdict else "OVER"


# One column spec renders both the terminal table (`tdpcr-edge bench`) and report.md:
# (header, row field, format, alignment).
COLUMNS = (
    ("backend / precision", None, "", "left"), ("MB", "model_mb", ".2f", "right"), ("PSNR dB", "psnr", ".2f", "right"),
    ("SSIM", "ssim", ".3f", "right"), ("SAM deg", "sam", ".2f", "right"), ("mIoU %", "miou", ".1f", "right"),
    ("dPSNR dB", "psnr_delta", "+.3f", "right"), ("dmIoU pt", "miou_delta", "+.2f", "right"), ("budget", None, "", "center"),
    ("p50 ms", "latency_ms_p50", ".1f", "right"), ("p25-p75 ms", None, "", "right"), ("p95 ms", "latency_ms_p95", ".1f", "right"), ("tiles/s", "tiles_per_s", ".2f", "right"),
    ("peak MB", "peak_mem_mb", ".0f", "right"), ("start s", "start_s", ".1f", "right"), ("Pareto", None, "", "center"),
)


def table(report: dict) -> list[list[str]]:
    """The report's rows as cells of ``COLUMNS``."""
    front = set(pareto_front(report["rows"], "psnr")) | set(pareto_front(report["rows"], "miou"))
    tie = fastest_tie(report)
    special = {"backend / precision": lambda r, i: row_label(r) + (" (tied)" if len(tie) > 1 and any(r is x for x in tie) else ""),
               "budget": lambda r, i: budget_mark(r), "Pareto": lambda r, i: "*" if i in front else "",
               "p25-p75 ms": lambda r, i: "-" if r.get("latency_ms_p25") is None else f"{r['latency_ms_p25']:.1f}-{r['latency_ms_p75']:.1f}"}
    return [[special[h](r, i) if key is None else _f(r.get(key), fmt) for h, key, fmt, _ in COLUMNS] for i, r in enumerate(report["rows"])]


def tie_note(report: dict, best: dict) -> str:
    """", tied with X and Y (latencies within each other's spread; least drift, then size, wins)" or ""."""
    others = [row_label(r) for r in fastest_tie(report) if r is not best]
    return f", tied with {' and '.join(others)} (p25-p75 ranges overlap or the same graph; least drift, then size, decides)" if others else ""


def markdown(report: dict) -> str:
    align = {"left": "---", "right": "---:", "center": ":-:"}
    lines = [
        f"# Accuracy against latency: {report.get('device_label', '')}, {report.get('date', '')}",
        "",
        "| " + " | ".join(h for h, *_ in COLUMNS) + " |",
        "|" + "|".join(align[a] for *_, a in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table(report)]
    best = fastest_within_budget(report)
    if best is not None:
        lines += ["", f"Fastest within the drift budget: **{row_label(best)}**, {best['latency_ms_p50']:.1f} ms per tile "
                      f"({best['psnr_delta']:+.3f} dB, {best['miou_delta']:+.2f} mIoU points against torch FP32){tie_note(report, best)}."]
    if any("energy_mj_per_tile" in r for r in report["rows"]):
        lines += ["", "| backend / precision | power W | energy mJ / tile |", "|---|---:|---:|"]
        lines += [f"| {row_label(r)} | {r['power_w']:.2f} | {r['energy_mj_per_tile']:.0f} |" for r in report["rows"] if "energy_mj_per_tile" in r]
    if report.get("skipped"):
        lines += ["", "Not run here:", ""]
        lines += [f"- {row_label(s)}: {s['reason']}" for s in report["skipped"]]
    lines += ["", f"Method: {report.get('method', '')}", ""]
    return "\n".join(lines)


def label_offsets(points: list[tuple[float, float]], near: float = 0.04, labels: list[str] | None = None, char_width: float = 0.014) -> list[tuple[int, int]]:
    """Text offsets (points) for the labels of ``points``: labels that would overlap are
    stacked upwards, one line apart, so rows that measure alike (FP32 and FP16 on a CPU, say)
    stay readable. Two labels overlap when their points lie within ``near`` of the y span of
    each other and, in x, within ``near`` of the x span or, given ``labels``, within the
    earlier label's width (``char_width`` of the x span per character)."""
    if not points:
        return []
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    xspan, yspan = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    levels: list[int] = []
    for i, (x, y) in enumerate(points):
        level = 0
        for j, (px, py) in enumerate(points[:i]):
            reach = max(near, char_width * len(labels[j])) * xspan if labels else near * xspan
            close_x = abs(x - px) <= near * xspan or (labels is not None and px <= x <= px + reach)
            if close_x and abs(y - py) <= near * yspan:
                level = max(level, levels[j] + 1)
        levels.append(level)
    if labels is None:
        return [(5, 4 + 10 * k) for k in levels]
    # With labels (a plot), stacks alternate above and below the point, so a crowded row of
    # points does not push its labels out of the axes.
    return [(5, 4 + 10 * (k // 2)) if k % 2 == 0 else (5, -12 - 10 * (k // 2)) for k in levels]


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, metric, ylabel in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "miou", "mIoU (%)")):
        pts = [(r["latency_ms_p50"], r[metric], row_label(r)) for r in rows if r.get(metric) is not None and r.get("latency_ms_p50") is not None]
        if not pts:
            ax.text(0.5, 0.5, f"no {metric} measured", ha="center", va="center", transform=ax.transAxes)
            continue
        front = pareto_front(rows, metric)
        over = [(r["latency_ms_p50"], r[metric]) for r in rows if r.get("within_budget") is False and r.get(metric) is not None and r.get("latency_ms_p50") is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="tab:blue", zorder=2, label="backend / precision")
        if over:
            ax.scatter([p[0] for p in over], [p[1] for p in over], marker="x", s=80, color="tab:gray", zorder=4, label="over the drift budget")
        fx, fy = [rows[i]["latency_ms_p50"] for i in front], [rows[i][metric] for i in front]
        ax.step(fx, fy, where="post", color="tab:red", lw=1.2, zorder=1)
        ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="tab:red", zorder=3, label="Pareto front")
        order = sorted(range(len(pts)), key=lambda k: pts[k][0])  # left to right, so widths reach rightwards
        offsets = dict(zip(order, label_offsets([pts[k][:2] for k in order], labels=[pts[k][2] for k in order])))
        for k, (x, y, label) in enumerate(pts):
            offset = offsets[k]
            ax.annotate(label, (x, y), textcoords="offset points", xytext=offset, fontsize=8)
        ax.margins(y=0.12)  # room for stacked labels above the top row
        ax.set_xlabel("latency p50 (ms per tile)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"TDP-CR accuracy against latency: {report.get('device_label', '')}, {report.get('date', '')}", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(report: dict, out: str | Path) -> list[Path]:
    """report.json, report.md and report.png in ``out``, each renamed into place whole."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.png"]
    write_json(paths[0], report)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(markdown(report))
    plot(report, paths[2])
    return paths


def from_benchmark_json(path: str | Path) -> dict:
    """A report from pytest-benchmark's ``--benchmark-json`` file: one row per benchmark
    that carries our ``extra_info`` (backend, precision, ...), latency from its timings."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        benches = data["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a pytest-benchmark JSON file ({exc}); write one with `pytest benchmarks --benchmark-only --benchmark-json FILE`") from None
    rows = []
    for b in benches:
        info = b.get("extra_info") or {}
        if "backend" not in info or "precision" not in info:
            continue
        s = b["stats"]
        row = {k: info.get(k) for k in ("backend", "precision", "variant", "device", "model_mb", "psnr", "ssim", "sam", "miou", "psnr_delta", "miou_delta", "peak_mem_mb")}
        row.update({k: v for k, v in info.items() if k not in row and k not in ("method", "device_info", "config")})
        row["latency_ms_p50"] = s["median"] * 1e3
        # pytest-benchmark keeps the raw rounds only with --benchmark-save-data; else p95 is unknown.
        data_ms = sorted(x * 1e3 for x in s.get("data", []))
        row["latency_ms_p95"] = data_ms[min(len(data_ms) - 1, int(round(0.95 * (len(data_ms) - 1))))] if data_ms else None
        row["tiles_per_s"] = 1.0 / s["mean"]
        row["benchmark"] = b.get("fullname") or b.get("name")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no benchmark in it carries backend/precision extra_info; run benchmarks/bench_precisions.py")
    first = next((b.get("extra_info", {}) for b in benches if b.get("extra_info", {}).get("method")), {})
    machine = data.get("machine_info", {})
    device = first.get("device_info") or {"cpu": machine.get("cpu", {}).get("brand_raw"), "machine": machine.get("machine")}
    from ..probe import device_label

    return {
        "rows": rows,
        "skipped": [],
        "device": device,
        "device_label": device_label(device) if "cores" in device else (device.get("cpu") or ""),
        "date": (data.get("datetime") or date.today().isoformat())[:10],
        "method": first.get("method", "pytest-benchmark timings; see the suite's docstring"),
        "source": f"pytest-benchmark JSON {path.name}",
    }
