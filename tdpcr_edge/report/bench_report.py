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

from ..drift import miou_text
from ..errors import DataError
from ..io_utils import atomic_path, write_json
from .plot import plot
from .rows import by_model, fastest_tie, fastest_within_budget, pareto_front, row_label


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def budget_mark(row: dict) -> str:
    """ok, OVER, or - when the row's drift was not judged (pytest-benchmark input)."""
    verdict = row.get("within_budget")
    return "-" if verdict is None else "ok" if verdict else "OVER"


# One column spec renders both the terminal table (`tdpcr-edge bench`) and report.md:
# (header, row field, format, alignment).
COLUMNS = (
    ("backend / precision", None, "", "left"),
    ("MB", "model_mb", ".2f", "right"),
    ("PSNR dB", "psnr", ".2f", "right"),
    ("SSIM", "ssim", ".3f", "right"),
    ("SAM deg", "sam", ".2f", "right"),
    ("mIoU %", "miou", ".1f", "right"),
    ("dPSNR dB", "psnr_delta", "+.3f", "right"),
    ("dmIoU pt", "miou_delta", "+.2f", "right"),
    ("budget", None, "", "center"),
    ("p50 ms", "latency_ms_p50", ".1f", "right"),
    ("p25-p75 ms", None, "", "right"),
    ("p95 ms", "latency_ms_p95", ".1f", "right"),
    ("tiles/s", "tiles_per_s", ".2f", "right"),
    ("peak MB", "peak_mem_mb", ".0f", "right"),
    ("start s", "start_s", ".1f", "right"),
    ("Pareto", None, "", "center"),
)


# A report of several models also says what each row's model is.
MODEL_COLUMNS = (("arch", "arch", "", "left"), ("params M", "params_m", ".2f", "right"), ("GMACs", "gmacs", ".1f", "right"))


def columns(report: dict) -> tuple:
    """``COLUMNS``, with the model's architecture, parameters and MACs when the report has several models."""
    return COLUMNS[:1] + MODEL_COLUMNS + COLUMNS[1:] if report.get("models") else COLUMNS


def table(report: dict) -> list[list[str]]:
    """The report's rows as cells of ``columns(report)``."""
    front = set(pareto_front(report["rows"], "psnr")) | set(pareto_front(report["rows"], "miou"))
    tie = [r for _, own in by_model(report) for r in (fastest_tie(own) if len(fastest_tie(own)) > 1 else [])]
    special = {
        "backend / precision": lambda r, i: row_label(r) + (" (tied)" if any(r is x for x in tie) else ""),
        "budget": lambda r, i: budget_mark(r),
        "Pareto": lambda r, i: "*" if i in front else "",
        "p25-p75 ms": lambda r, i: "-" if r.get("latency_ms_p25") is None else f"{r['latency_ms_p25']:.1f}-{r['latency_ms_p75']:.1f}",
    }

    def cell(r: dict, i: int, header: str, key: str | None, fmt: str) -> str:
        return special[header](r, i) if key is None else _f(r.get(key), fmt) if fmt else str(r.get(key, "-"))

    return [[cell(r, i, h, key, fmt) for h, key, fmt, _ in columns(report)] for i, r in enumerate(report["rows"])]


def tie_note(report: dict, best: dict) -> str:
    """ ", tied with X and Y (latencies within each other's spread; least drift, then size, wins)" or ""."""
    others = [row_label(r) for r in fastest_tie(report) if r is not best]
    return (
        f", tied with {' and '.join(others)} (p25-p75 ranges overlap or the same graph; least drift, then size, decides)" if others else ""
    )


def markdown(report: dict) -> str:
    align = {"left": "---", "right": "---:", "center": ":-:"}
    lines = [
        f"# Accuracy against latency: {report.get('device_label', '')}, {report.get('date', '')}",
        "",
        "| " + " | ".join(h for h, *_ in columns(report)) + " |",
        "|" + "|".join(align[a] for *_, a in columns(report)) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table(report)]
    for _, own in by_model(report):
        best = fastest_within_budget(own)
        if best is not None:
            lines += [
                "",
                f"Fastest within the drift budget: **{row_label(best)}**, {best['latency_ms_p50']:.1f} ms per tile "
                f"({best['psnr_delta']:+.3f} dB, {miou_text(best['miou_delta'], ' mIoU points')} against torch FP32){tie_note(own, best)}.",
            ]
    if any("energy_mj_per_tile" in r for r in report["rows"]):
        lines += ["", "| backend / precision | power W | energy mJ / tile |", "|---|---:|---:|"]
        lines += [
            f"| {row_label(r)} | {r['power_w']:.2f} | {r['energy_mj_per_tile']:.0f} |" for r in report["rows"] if "energy_mj_per_tile" in r
        ]
    if report.get("skipped"):
        lines += ["", "Not run here:", ""]
        lines += [f"- {row_label(s)}: {s['reason']}" for s in report["skipped"]]
    lines += ["", f"Method: {report.get('method', '')}", ""]
    return "\n".join(lines)


# The figure's panels: (metric, axis label, unit in a label, format the table prints it in).
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
        raise DataError(
            f"{path}: not a pytest-benchmark JSON file ({exc}); write one with `pytest benchmarks --benchmark-only --benchmark-json FILE`"
        ) from None
    rows = []
    for b in benches:
        info = b.get("extra_info") or {}
        if "backend" not in info or "precision" not in info:
            continue
        s = b["stats"]
        row = {
            k: info.get(k)
            for k in (
                "backend",
                "precision",
                "variant",
                "device",
                "model_mb",
                "psnr",
                "ssim",
                "sam",
                "miou",
                "psnr_delta",
                "miou_delta",
                "peak_mem_mb",
            )
        }
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


def report_head(rows: list[dict], skipped: list[dict], method: str) -> dict:
    """The fields every bench report starts with: its rows, what did not run, the machine, the
    date and how it was measured."""
    from ..probe import device_info, device_label

    info = device_info()
    return {
        "rows": rows,
        "skipped": skipped,
        "device": info,
        "device_label": device_label(info),
        "date": date.today().isoformat(),
        "method": method,
    }
