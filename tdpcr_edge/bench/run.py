"""`tdpcr-edge bench`: every backend and precision this machine can run, on the same
held-out tiles, accuracy beside latency and memory.

For each registry row (``bench.matrix``) that is available here: the artifact it needs is
exported when missing (or reused when its manifest matches the checkpoint and tile), a
TensorRT engine is built when TensorRT is present, then the runner is scored on every
held-out tile against the ground truth and against torch FP32 on the CPU (the deltas), and
timed on the same tiles. Rows that cannot run are listed with the reason.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..backends.runner import Runner
from ..contract import file_sha256
from ..data.scenes import SceneArrays
from ..drift import measure_drift
from ..errors import ConfigError
from ..probe import cuda_available
from ..report.bench_report import report_head
from .artifacts import artifact_key, artifact_keys, ensure_artifacts, ensure_engine
from .matrix import combos as all_combos
from .matrix import make_runner, select, unavailable
from .memory_probe import peak_memory_mb
from .options import BenchOptions
from .power import TegraStats
from .row import accuracy_fields, tile_calls
from .timing import latency_fields, time_rows

ROW_FIELDS = (
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
    "within_budget",
    "latency_ms_p50",
    "latency_ms_p95",
    "tiles_per_s",
    "peak_mem_mb",
    "start_s",
    "model_path",
)


def method_text(opts: BenchOptions, tiles: int, timer: str = "tdpcr-edge bench") -> str:
    memory = (
        "Memory: CPU rows, the peak resident memory the runner adds in a fresh process of its own (VmHWM after 3 calls minus "
        "VmRSS before the runner was created, torch, ONNX Runtime and OpenVINO imported first; not measured for torch.compile rows, whose "
        "compiler's memory would dominate); CUDA rows, torch's peak allocated device memory. "
        if timer == "tdpcr-edge bench"
        else "Memory: not measured by pytest-benchmark. "
    )
    return (
        f"{tiles} held-out {opts.tile}x{opts.tile} tiles (data {opts.data}), batch 1. Accuracy: every tile against its ground truth; "
        "deltas against torch FP32 on the CPU on the same tiles (PSNR in dB, mIoU in points). Latency: "
        f"{timer}, {opts.warmup} warm-up calls, then {opts.iterations} timed calls of the runner's infer() cycling through the tiles; "
        + (
            f"every row timed as it runs alone: in {min(opts.rounds, opts.iterations)} blocks of consecutive calls, one block per row and "
            "round, "
            "each block after one untimed call, the order of the rows rotated each round; ONNX Runtime's threads do not spin between "
            "calls, so no row's idle pool takes the cores from the next; a round whose median is over 10% slower than the row's best "
            "round ran in a slow spell of the host and is left out (rounds kept: report.json's rounds_kept); "
            if timer == "tdpcr-edge bench"
            else ""
        )
        + "wall time per call including host-device copies, padding and numpy conversion; p50, p25-p75 and p95 over the timed calls kept; "
        "rows whose p25-p75 ranges overlap, or whose kept rounds' medians overlap, or that run the same graph on the same backend, "
        "are tied, and a tie is broken by drift, then size; "
        "tiles/s = timed calls / their total time. "
        f"{memory}Threads: {torch_threads()} for torch, {os.cpu_count()} for ONNX Runtime and OpenVINO (latency hint, one stream). "
        "OpenVINO rows set the inference precision (f32: the graph's own types; bf16 for the bf16 artifact), except 'default', which "
        "leaves OpenVINO's own settings (BF16 on CPUs with AMX or AVX512_BF16). start s: creating the runner and its first call "
        "(torch.compile's compilation, OpenVINO's compile or model-cache load), apart from the latency. Budget: each row's own drift "
        "against torch FP32 on these tiles. Power (Jetson only): mean of tegrastats' input rail over the timed calls; energy per tile = "
        "power x p50 latency."
    )


def time_runner(runner: Runner, tiles: list[SceneArrays], warmup: int, iterations: int) -> list[float]:
    """Milliseconds per infer() call, batch 1, cycling through ``tiles``, in one block."""
    return time_rows([tile_calls(runner, tiles)], warmup, iterations, rounds=1, sync=_sync())[0].calls_ms


def _sync() -> Callable[[], None] | None:
    if not cuda_available():
        return None
    import torch

    return torch.cuda.synchronize


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def run_bench(opts: BenchOptions, on_stage: Callable[[str], None] | None = None) -> dict:
    """Run every available combination for every model asked for; returns the report (see
    ``report.bench_report``). Without torch, every installed backend on the artifacts under
    ``opts.artifacts`` (``on_artifacts``)."""
    from .on_artifacts import run_on_artifacts, torch_installed

    if not torch_installed():
        return run_on_artifacts(opts, on_stage)
    import torch

    from ..drift import over_budget, parse_budget
    from ..train.checkpoint import load_checkpoint

    stage = on_stage or (lambda name: None)
    combos = select(opts.backends, opts.precisions)
    names = {k.name for k in combos}
    skip = {n.strip() for n in opts.skip.split(",") if n.strip()}
    every = {k.name for k in all_combos()}
    if skip - every:
        raise ConfigError(f"--skip {', '.join(sorted(skip - every))}: no such row; rows are named like {', '.join(sorted(names)[:3])}")
    combos = [k for k in combos if k.name not in skip]
    budget = parse_budget(opts.drift_budget)
    if opts.warmup < 0 or opts.iterations < 1:
        raise ConfigError(f"--warmup {opts.warmup} / --iterations {opts.iterations}: need warmup >= 0 and iterations >= 1")
    checkpoints = [load_checkpoint(p) for p in opts.models()]
    several = len(checkpoints) > 1
    models = [model_record(ck, label, opts.tile) for ck, label in zip(checkpoints, model_labels(checkpoints))]
    runnable = [(combo, unavailable(combo)) for combo in combos]
    skipped = [
        {"backend": k.backend, "precision": k.precision, "variant": k.variant, "device": k.device, "reason": why}
        for k, why in runnable
        if why
    ]
    runnable = [k for k, why in runnable if not why]
    torch.set_num_threads(os.cpu_count())
    measured, exported = [], []
    for ckpt, model in zip(checkpoints, models):
        # Each model's artifacts and engines in folders of its own when there are several, named
        # by its weights so that the order of --checkpoint does not matter.
        folder = f"{model['arch']}-{model['config']}-{model['sha256'][:8]}"
        own = replace(
            opts,
            checkpoint=ckpt.path,
            artifacts=_artifacts_root(opts) / folder if several else opts.artifacts,
            engines=_engines_root(opts) / folder if several else opts.engines,
        )
        rows, made = _measure_model(own, ckpt, runnable, lambda name: stage(f"{model['label']}: {name}" if several else name))
        measured += [(*m, model if several else None) for m in rows]
        exported += made
    # Every row's runner stays active; each row is timed in blocks of its own (``timing``).
    times = time_rows(
        [tile_calls(m[1], m[7]) for m in measured],
        opts.warmup,
        opts.iterations,
        opts.rounds,
        sync=_sync(),
        on_round=lambda r, n: stage(f"time {len(measured)} rows, each alone: round {r + 1} of {n}"),
    )
    rows = []
    for (combo, runner, artifact, engine, drift, start_s, peak, tiles, ckpt, model), row_times in zip(measured, times):
        power = TegraStats()
        if power.available:  # power needs the row alone: its own pass, after the timing
            with power:
                time_runner(runner, tiles, 0, opts.iterations)
        runner.deactivate()
        lat = latency_fields(row_times.blocks)
        row = {
            **({"model": model["label"], "arch": model["arch"], "params_m": model["params_m"], "gmacs": model["gmacs"]} if model else {}),
            **accuracy_fields(combo, drift, ckpt.path, artifact, engine),
            **lat,
            "peak_mem_mb": peak if combo.device == "cuda" else peak_memory_mb(combo, ckpt.path, artifact, engine, tiles[0]),
            "start_s": start_s,
            "within_budget": not over_budget(drift, budget),
            "over_budget": over_budget(drift, budget),
            "model_path": str(engine or artifact or ckpt.path),
        }
        if power.mean_power_w is not None:
            row["power_w"] = power.mean_power_w
            row["energy_mj_per_tile"] = power.mean_power_w * lat["latency_ms_p50"]
        rows.append(row)
    first = checkpoints[0]
    tiles = len(measured[0][7]) if measured else 0  # held out per model: the same scenes for each
    return {
        **report_head(rows, skipped, method_text(opts, tiles)),
        "checkpoint": {"path": str(first.path), "sha256": file_sha256(first.path), "config": first.config.name, "arch": first.config.arch},
        **({"models": models} if several else {}),
        "data": opts.data,
        "tiles": tiles,
        "tile": opts.tile,
        "exported": exported,
        "budget": budget,
        "target": opts.target,
        "source": "tdpcr-edge bench",
    }


def _artifacts_root(opts: BenchOptions) -> Path:
    return Path(opts.artifacts or Path(opts.report) / "artifacts")


def _engines_root(opts: BenchOptions) -> Path:
    return Path(opts.engines or Path(opts.report) / "engines")


def model_labels(checkpoints: list) -> list[str]:
    """One name per model: architecture and size, numbered where two are alike."""
    from ..model.registry import model_label

    base = [model_label(ck.config) for ck in checkpoints]
    return [b if base.count(b) == 1 else f"{b}-{base[:i].count(b) + 1}" for i, b in enumerate(base)]


def model_record(ckpt, label: str, tile: int) -> dict:
    """What the report says of a model: its name, architecture, size, parameters and MACs
    per tile (counted by tracing one forward pass, ``model.profile``)."""
    from ..model.profile import total_cost

    c = ckpt.config
    total = total_cost(c, tile)
    return {
        "label": label,
        "arch": c.arch,
        "config": c.name,
        "params_m": total.params / 1e6,
        "gmacs": total.macs / 1e9,
        "path": str(ckpt.path),
        "sha256": file_sha256(ckpt.path),
    }


def _measure_model(opts: BenchOptions, ckpt, runnable: list, stage: Callable[[str], None]) -> tuple[list[tuple], list[str]]:
    """One model's rows: artifacts exported (or reused), each runner created, warmed and scored
    against this model's torch FP32 on its held-out tiles; the runners are left active for
    the timing of every model's rows together."""
    import torch

    from ..backends.torch_runner import TorchRunner
    from ..export.heldout import DRIFT_SEED, tiles_from
    from ..model.registry import get_arch

    c = ckpt.config
    if opts.tile % c.multiple:
        raise ConfigError(f"--tile {opts.tile} is not a multiple of {c.multiple}, which the {c.arch} {c.name} model needs")
    stage("load held-out tiles")
    # The same seed for every model: the same scenes, each read as its checkpoint reads them.
    tiles = tiles_from(opts.data, opts.tiles, opts.tile, ckpt.normalization, c.num_classes, DRIFT_SEED)
    artifacts, exported = ensure_artifacts(opts, artifact_keys(runnable), stage)
    engines_root = _engines_root(opts)
    stage("torch FP32 reference")
    reference = TorchRunner(ckpt.path)
    reference_cache = None
    measured = []
    for combo in runnable:
        if combo.variant == "fused" and not get_arch(c.arch).plugin:
            continue  # the fused PGF kernel: a model without PGF would run eager under its name
        stage(combo.name)
        artifact = artifacts.get(artifact_key(combo)) if combo.needs_artifact else None
        engine = ensure_engine(artifact, engines_root, combo.precision) if combo.reads == "engine" else None
        gc.collect()
        cuda = combo.device == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        runner = make_runner(combo, ckpt.path, artifact, engine).activate()
        runner(tiles[0].optical[None], tiles[0].sar[None])
        start_s = time.perf_counter() - start
        drift, reference_cache = measure_drift(reference, runner, tiles, c.num_classes, reference_cache)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        measured.append((combo, runner, artifact, engine, drift, start_s, peak, tiles, ckpt))
    return measured, exported
