"""The paper's comparison at the edge: every registered architecture trained at an equal budget
on the synthetic world, scored on the same held-out scenes of an unseen seed, counted
(parameters and MACs at its small and full sizes) and benched at each precision in one
report, its rows timed together (``bench.run``).

The budget: the same reconstruction steps, batches, patches, seed and schedule for every
architecture; a joint model (TDP-CR, its concatenation twin) then trains its segmentation
head and adapters for as many steps again, which leaves its reconstruction as it was. Runs
live in ``OUT/train/ARCH`` and resume, so a run trained elsewhere is picked up and only scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .bench.options import BenchOptions
from .bench.run import run_bench
from .data.sources import SyntheticSource
from .io_utils import atomic_path, write_json
from .model.profile import total_cost
from .model.registry import get_arch, get_config, names
from .report.bench_report import write_report
from .report.rows import by_model, fastest_within_budget, row_label
from .scoring import evaluate_scenes
from .train import TrainOptions, load_checkpoint, train


@dataclass
class ComparisonOptions:
    out: Path
    archs: tuple[str, ...] = ()  # empty: every registered architecture
    size: str = "small"
    steps: int = 300  # reconstruction steps of every architecture (and segmentation steps of the joint ones)
    batch: int = 8
    patch: int = 64
    seed: int = 0
    eval_seed: int = 7  # held-out scenes: a seed no run trains on
    eval_scenes: int = 16
    eval_size: int = 128
    backends: str = "ort,openvino"
    precisions: str = "fp32,fp16,int8"
    tile: int = 256
    bench_tiles: int = 8
    iterations: int = 20
    rounds: int = 5
    skip: str = "openvino-int8-nncf"  # a peer of our INT8, not a precision of the model

    def architectures(self) -> list[str]:
        return list(self.archs) or names()


def _train(opts: ComparisonOptions, arch: str, on_step) -> Path:
    run = Path(opts.out) / "train" / arch
    if not (run / "model.pt").exists():
        train(
            TrainOptions(out=run, arch=arch, config=opts.size, steps=opts.steps, batch=opts.batch, patch=opts.patch, seed=opts.seed),
            on_step=on_step,
        )
    return run / "model.pt"


def _scores(result: dict) -> dict:
    by_bin = {name: b["model"].get("psnr") for name, b in result["bins"].items()}
    return {
        "psnr": result["model"]["psnr"],
        "ssim": result["model"]["ssim"],
        "sam": result["model"]["sam"],
        "miou": result["model"].get("miou"),
        "psnr_by_thickness": by_bin,
        "input_psnr": result["input"]["psnr"],
    }


def _latencies(report: dict) -> dict[str, dict]:
    """Per model and precision, its fastest row within the drift budget (backend named)."""
    out: dict[str, dict] = {}
    for label, own in by_model(report):
        for precision in dict.fromkeys(r["precision"] for r in own["rows"]):
            best = fastest_within_budget({**own, "rows": [r for r in own["rows"] if r["precision"] == precision]})
            out.setdefault(label, {})[precision] = (
                {"ms": best["latency_ms_p50"], "row": row_label(best), "psnr_delta": best["psnr_delta"]} if best else None
            )
    return out


def run_comparison(opts: ComparisonOptions, on_stage: Callable[[str], None] | None = None, on_step: Callable | None = None) -> dict:
    """Train, score, count and bench every architecture; writes OUT/comparison.json,
    OUT/comparison.md and the bench report (OUT/bench/report.*); returns the summary."""
    stage = on_stage or (lambda name: None)
    archs = opts.architectures()
    for arch in archs:
        get_arch(arch).config(opts.size)  # an unknown architecture or size stops before any training
    checkpoints = {}
    for arch in archs:
        stage(f"train {arch} {opts.size}")
        checkpoints[arch] = _train(opts, arch, on_step)
    rows = []
    for arch in archs:
        stage(f"score {arch}")
        ckpt = load_checkpoint(checkpoints[arch])
        scenes = SyntheticSource(opts.eval_seed, ckpt.config.num_classes, ckpt.normalization).scenes(opts.eval_scenes, opts.eval_size)
        result, _ = evaluate_scenes(ckpt.build(), scenes)
        small, full = total_cost(ckpt.config, opts.tile), total_cost(get_config("full", arch), opts.tile)
        row = get_arch(arch)
        rows.append(
            {
                "arch": arch,
                "summary": row.summary,
                "outputs": list(row.outputs),
                "size": opts.size,
                "params_m": small.params / 1e6,
                "gmacs": small.macs / 1e9,
                "full_params_m": full.params / 1e6,
                "full_gmacs": full.macs / 1e9,
                **_scores(result),
            }
        )
    stage("bench every model")
    bench = run_bench(
        BenchOptions(
            report=Path(opts.out) / "bench",
            checkpoints=tuple(checkpoints[a] for a in archs),
            backends=opts.backends,
            precisions=opts.precisions,
            tile=opts.tile,
            tiles=opts.bench_tiles,
            iterations=opts.iterations,
            rounds=opts.rounds,
            skip=opts.skip,
        ),
        on_stage=lambda name: stage(f"bench: {name}"),
    )
    write_report(bench, Path(opts.out) / "bench")
    latency = _latencies(bench)
    labels = [m["label"] for m in bench.get("models", [])] or [None]  # one model: its rows carry no label
    for row, label in zip(rows, labels):
        row["latency"] = latency.get(label, {})
    summary = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in opts.__dict__.items()},
        "device_label": bench.get("device_label"),
        "date": bench.get("date"),
        "rows": rows,
        "bench_report": str(Path(opts.out) / "bench" / "report.json"),
    }
    write_json(Path(opts.out) / "comparison.json", summary)
    with atomic_path(Path(opts.out) / "comparison.md") as tmp:
        tmp.write_text(comparison_markdown(summary))
    return summary


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def comparison_markdown(summary: dict) -> str:
    o = summary["options"]
    precisions = o["precisions"].split(",")
    head = (
        "| architecture | params M | GMACs | params M (full) | GMACs (full) | PSNR dB | clear | thin | thick | SSIM | mIoU % | "
        + " | ".join(f"{p} ms" for p in precisions)
        + " |"
    )
    lines = [
        f"Every architecture at its `{o['size']}` size, {o['steps']} reconstruction steps each (batch {o['batch']}, {o['patch']} px, "
        f"seed {o['seed']}); scored on {o['eval_scenes']} held-out {o['eval_size']} px scenes (seed {o['eval_seed']}). "
        f"MACs per {o['tile']} px tile. Latency: the fastest row within the drift budget at each precision "
        f"({o['backends']}), p50 ms per {o['tile']} px tile on {summary.get('device_label')}, {summary.get('date')}.",
        "",
        head,
        "|---|" + "---:|" * (10 + len(precisions)),
    ]
    for r in summary["rows"]:
        b = r["psnr_by_thickness"]
        lat = [_f((r["latency"].get(p) or {}).get("ms"), ".1f") for p in precisions]
        lines.append(
            f"| {r['arch']} | {r['params_m']:.3f} | {r['gmacs']:.2f} | {r['full_params_m']:.2f} | {r['full_gmacs']:.1f} | "
            f"{r['psnr']:.2f} | {_f(b.get('clear'), '.2f')} | {_f(b.get('thin'), '.2f')} | {_f(b.get('thick'), '.2f')} | "
            f"{r['ssim']:.3f} | {_f(r['miou'], '.1f')} | " + " | ".join(lat) + " |"
        )
    lines += ["", f"Input (cloudy) PSNR on the same scenes: {summary['rows'][0]['input_psnr']:.2f} dB.", ""]
    return "\n".join(lines)
