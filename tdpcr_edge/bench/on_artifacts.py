"""`tdpcr-edge bench` where torch is not installed (the runtime install on a device): every
installed backend on the artifacts (and engines) exported elsewhere, with the report the full
bench writes. There is no checkpoint to run torch FP32 from, so each row's accuracy and drift
come from its artifact's golden set: scored against the ground truth, and against the stored
torch FP32 outputs (the drift). Latency is timed on synthetic held-out tiles at ``--tile``,
every row alone (``timing``), as the full bench does.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import Callable

from .. import golden
from ..contract import is_artifact, is_engine, read_engine_record, read_manifest
from ..data.normalize import Normalization
from ..data.sources import SyntheticSource
from ..drift import over_budget, parse_budget
from ..errors import ConfigError
from ..export.heldout import DRIFT_SEED
from ..model.registry import model_label
from ..report.bench_report import report_head
from .matrix import make_runner, select, unavailable
from .memory_probe import peak_memory_mb
from .options import BenchOptions
from .row import accuracy_fields, tile_calls
from .timing import latency_fields, time_rows


def method_text(opts: BenchOptions) -> str:
    return (
        "Without torch (a runtime install): each row runs an artifact or engine exported elsewhere. Accuracy: the artifact's golden "
        "set (its tiles, ground truth and torch FP32's outputs, stored at export); deltas against those FP32 outputs (PSNR in dB, "
        f"mIoU in points). Latency: {opts.warmup} warm-up calls, then {opts.iterations} timed calls on synthetic held-out "
        f"{opts.tile}x{opts.tile} tiles, batch 1, every row timed as it runs alone (in {min(opts.rounds, opts.iterations)} blocks, "
        "rotated; slow rounds left out), wall time per call; p50, p25-p75 and p95. Memory: the peak resident memory the runner adds in "
        f"a fresh process of its own. Threads: {os.cpu_count()} for ONNX Runtime and OpenVINO. Budget: each row's golden drift."
    )


def folders(root: Path, depth: int = 2) -> list[tuple[Path, dict, str]]:
    """(folder, record, kind) of every artifact and engine folder under ``root``: directly, or
    one level down (a bench of several models keeps each model's in a folder of its own)."""
    found = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if is_artifact(p):
            found.append((p, read_manifest(p), "artifact"))
        elif is_engine(p):
            found.append((p, read_engine_record(p), "engine"))
        elif p.is_dir() and depth > 1:
            found += folders(p, depth - 1)
    return found


def run_on_artifacts(opts: BenchOptions, on_stage: Callable[[str], None] | None = None) -> dict:
    stage = on_stage or (lambda name: None)
    if opts.artifacts is None:
        raise ConfigError(
            "torch is not installed here, so bench cannot export: pass --artifacts DIR, a folder of artifacts (and engines) "
            "exported elsewhere, or pip install 'tdpcr-edge[export]'"
        )
    root = Path(opts.artifacts)
    budget = parse_budget(opts.drift_budget)
    combos = select(opts.backends, opts.precisions)
    found = folders(root) + (folders(Path(opts.engines)) if opts.engines else [])
    rows_to_run, skipped = [], []
    for path, record, kind in found:
        if not record.get("golden"):
            why = "NNCF's peer IR carries no golden set" if record.get("format") == "openvino-ir" else "no golden set: export it again"
            skipped.append({"path": str(path), "reason": why})
            continue
        for combo in combos:
            if combo.reads != kind or combo.precision != record.get("precision"):
                continue
            why = unavailable(combo)
            if why:
                skipped.append({"backend": combo.backend, "precision": combo.precision, "variant": combo.variant, "reason": why})
            else:
                rows_to_run.append((combo, path, record))
    if not rows_to_run:
        raise ConfigError(f"{root}: no artifact or engine here runs on this machine's backends; export them with `tdpcr-edge export`")

    measured = []
    for combo, path, record in rows_to_run:
        stage(f"{combo.name} ({path.name})")
        gc.collect()
        start = time.perf_counter()
        artifact, engine = (path, None) if combo.reads == "artifact" else (None, path)
        runner = make_runner(combo, None, artifact, engine).activate()  # its digests checked first
        norm = Normalization.from_dict(record["normalization"])
        tiles = [SyntheticSource(DRIFT_SEED, record["model"]["num_classes"], norm).scene(i, opts.tile) for i in range(opts.tiles)]
        runner(tiles[0].optical[None], tiles[0].sar[None])
        start_s = time.perf_counter() - start
        drift = golden.measure(golden.read(path), runner, record["model"]["num_classes"])
        measured.append((combo, path, artifact, engine, runner, drift, start_s, tiles, record))

    times = time_rows(
        [tile_calls(m[4], m[7]) for m in measured],
        opts.warmup,
        opts.iterations,
        opts.rounds,
        on_round=lambda r, n: stage(f"time {len(measured)} rows, each alone: round {r + 1} of {n}"),
    )
    rows = []
    labels = {model_label(m[8]["model"]) for m in measured}
    several = len(labels) > 1  # rows then name their model, and each model's fastest row is its own
    for (combo, path, artifact, engine, runner, drift, start_s, tiles, record), row_times in zip(measured, times):
        runner.deactivate()
        rows.append(
            {
                **({"model": model_label(record["model"]), "arch": record["model"].get("arch", "tdpcr")} if several else {}),
                **accuracy_fields(combo, drift, None, artifact, engine),
                **latency_fields(row_times.blocks),
                "peak_mem_mb": peak_memory_mb(combo, None, artifact, engine, tiles[0]),
                "start_s": start_s,
                "within_budget": not over_budget(drift, budget),
                "over_budget": over_budget(drift, budget),
                "model_path": str(path),
            }
        )
    return {
        **report_head(rows, skipped, method_text(opts)),
        **({"models": [{"label": label} for label in sorted(labels)]} if several else {}),
        "reference": "golden",
        "checkpoint": None,
        "data": "golden sets; latency on synthetic tiles",
        "tiles": opts.tiles,
        "tile": opts.tile,
        "exported": [],
        "budget": budget,
        "target": opts.target,
        "source": "tdpcr-edge bench (artifacts, no torch)",
    }


def torch_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
