"""Whole archives: a list of scenes streamed into one folder, in this process or on a Ray
cluster, with retries, resume and one summary.

Each scene goes through the scene stream unchanged (``stream``) into ``OUT/NAME/``.
On Ray, a pool of actors each holds one runner (the model loaded once per actor, with its
CPU and GPU share declared) and pulls the next scene when it finishes one, so large and
small scenes balance. An actor that dies (killed, out of memory, node lost) is restarted by
Ray and its scene run again, continuing from the scene's journal. A scene with bad input
fails alone, its one-line error recorded. Rerunning the same command skips every scene
whose ``run.json`` is complete for the same model and options. ``OUT/summary.json`` and
``OUT/summary.md`` hold the scenes, the pooled accuracy and the throughput.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, MissingDependency
from ..io_utils import atomic_path, write_json
from ..stream import open_runner
from ..stream.options import default_workers
from .job import ArchiveOptions, _row_figures, completed, job_key, model_identity, process_scene

RAY_INSTALL = "pip install 'tdpcr-edge[cluster]' (Ray)"


def run_archive(
    jobs: list[dict],
    opts: ArchiveOptions,
    on_scene: Callable[[dict], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> dict:
    """Stream every scene of ``jobs`` (``scene_jobs``' rows) into ``opts.out``; returns the
    summary, also written to summary.json and summary.md. ``on_start(scenes, skipped)`` and
    ``on_scene(row)`` report progress."""
    names = [j["name"] for j in jobs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"scene name {dup!r} appears twice in the list; give each row its own name")
    if opts.workers is not None and opts.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {opts.workers}")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    model_id = model_identity(opts.stream)
    keys = {j["name"]: job_key(j, opts.stream, model_id) for j in jobs}
    rows, todo = {}, []
    for j in jobs:
        record = completed(j, opts, keys[j["name"]])
        if record is not None:
            rows[j["name"]] = {"name": j["name"], "status": "skipped (complete)", "worker": None, "attempts": 0, **_row_figures(record)}
        else:
            todo.append(j)
    if on_start:
        on_start(len(jobs), len(jobs) - len(todo))
    t0 = time.perf_counter()
    engine: dict = {"engine": "in-process", "workers": 0}  # every scene complete: none ran
    if todo:
        runner = _run_on_ray if opts.ray else _run_here
        engine = runner(todo, opts, keys, lambda row: (rows.__setitem__(row["name"], row), on_scene and on_scene(row)))
    wall = time.perf_counter() - t0
    summary = build_summary([rows[n] for n in names], wall, engine, opts)
    write_summary(summary, out)
    return summary


def _run_here(todo: list[dict], opts: ArchiveOptions, keys: dict, done: Callable[[dict], None]) -> dict:
    """One runner in this process, the model loaded once, scenes one after another."""
    t0 = time.perf_counter()
    runner, meta = open_runner(opts.stream.get("model"), opts.stream.get("backend", "auto"), opts.stream.get("public_key"))
    workers = runner.share_cpu(opts.workers or opts.stream.get("workers") or default_workers())
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with runner:
        runner.activate()
        startup = time.perf_counter() - t0
        for job in todo:
            done(process_scene(job, opts, keys[job["name"]], (runner, meta, workers), worker))
        busy = time.perf_counter() - t0 - startup
    return {"engine": "in-process", "workers": 1, "startup_s": round(startup, 3), "busy_s": round(busy, 3)}


def _run_on_ray(todo: list[dict], opts: ArchiveOptions, keys: dict, done: Callable[[dict], None]) -> dict:
    from .on_ray import run_on_ray

    try:
        import ray  # noqa: F401  (is Ray installed: fail before any scene starts)
    except ImportError:
        raise MissingDependency(f"--ray needs Ray, which is not installed; {RAY_INSTALL}") from None
    return run_on_ray(todo, opts, keys, done)


def pooled(rows: list[dict]) -> dict:
    from ..stream.scene_metrics import pool_accuracy

    sums = [r["sums"] for r in rows if r.get("sums")]
    return pool_accuracy(sums) if sums else {}


def build_summary(rows: list[dict], wall_s: float, engine: dict, opts: ArchiveOptions) -> dict:
    ran = [r for r in rows if r["status"] == "done"]
    tiles = sum(r.get("tiles") or 0 for r in ran)
    # Throughput over the scenes' processing: the engine's start-up (Ray's, the model loads)
    # and tear-down are reported apart, as they do not grow with the archive.
    busy = engine.get("busy_s", wall_s - engine.get("startup_s", 0.0))
    return {
        "scenes": len(rows),
        "done": len(ran),
        "skipped": sum(r["status"].startswith("skipped") for r in rows),
        "failed": sum(r["status"] == "failed" for r in rows),
        "tiles": tiles,
        "wall_s": round(wall_s, 3),
        "tiles_per_s": round(tiles / busy, 3) if busy > 0 and tiles else None,
        **engine,
        "accuracy": pooled([r for r in rows if r["status"] != "failed"]),
        "warnings": sorted({w for r in rows for w in r.get("warnings", [])}),
        "stream": {k: (str(v) if isinstance(v, Path) else v) for k, v in opts.stream.items()},
        "rows": [{k: v for k, v in r.items() if k not in ("sums", "warnings")} for r in rows],
    }


def summary_markdown(s: dict) -> str:
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    # A model without classes (a reconstruction-only baseline) scores no scene's mIoU: no column of dashes.
    miou = any(r.get("miou") is not None for r in s["rows"])
    lines = [
        f"# Archive: {s['scenes']} scenes, {s['done']} streamed, {s['skipped']} skipped as complete, {s['failed']} failed",
        "",
        f"Engine: {s['engine']}, {s['workers']} worker(s); of the {s['wall_s']:.1f} s wall time, start-up (engine and model loads) "
        f"{s.get('startup_s', 0):.1f} s and scenes {f(s.get('busy_s'), '.1f')} s: {s['tiles']} tiles at {f(s['tiles_per_s'], '.2f')} "
        "tiles/s.",
        "",
        f"| scene | status | tiles | tiles/s | PSNR dB |{' mIoU % |' if miou else ''} worker | attempts | error |",
        f"|---|---|---:|---:|---:|{'---:|' if miou else ''}---|---:|---|",
    ]
    for r in s["rows"]:
        lines.append(
            f"| {r['name']} | {r['status']} | {f(r.get('tiles'), 'd')} | {f(r.get('tiles_per_s'), '.2f')} | {f(r.get('psnr'), '.2f')} |"
            + (f" {f(r.get('miou'), '.1f')} |" if miou else "")
            + f" {r.get('worker') or '-'} | {r.get('attempts', 0)} | {r.get('error', '')} |"
        )
    m = s["accuracy"].get("model", {})
    if m:
        i = s["accuracy"].get("input", {})
        lines += [
            "",
            "Pooled over the archive's scenes (every valid pixel): "
            + "; ".join(
                x
                for x in (
                    f"PSNR {f(i.get('psnr'), '.2f')} -> {m['psnr']:.2f} dB" if "psnr" in m else "",
                    f"SSIM {m['ssim']:.3f}" if "ssim" in m else "",
                    f"mIoU {m['miou']:.1f} %" if "miou" in m else "",
                )
                if x
            ),
        ]
    return "\n".join(lines) + "\n"


def write_summary(summary: dict, out: Path) -> None:
    write_json(out / "summary.json", summary)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary_markdown(summary))
