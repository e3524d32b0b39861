"""`tdpcr-edge`: a thin command layer over the library. Each command parses options, calls
one library function and prints its result; failures print one line and exit non-zero."""

from __future__ import annotations

import contextlib

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import ConfigError, TdpcrError

app = typer.Typer(
    name="tdpcr-edge",
    help="TDP-CR cloud removal and land-cover segmentation: train, evaluate, export, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped or logged output (CI, `| tee`) gets a wide fixed width instead of rich's 80
# columns, which would crush the tables.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[callable]:
    """A bar that vanishes when done; a failure then leaves only its one error line.
    ``total`` may be None until known: ``advance(0, total=n)`` sets it."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    start = time.perf_counter()
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda advance=1, **kw: progress.update(task, advance=advance, **kw)
        done, total = int(progress.tasks[0].completed), progress.tasks[0].total
    err_console.print(f"{description}: {done}/{total:.0f} in {time.perf_counter() - start:.1f} s", highlight=False)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


@app.command()
def info(
    config: str = typer.Option("tiny", help="Model config: tiny or base."),
    fusion: str = typer.Option("pgf", help="Fusion: pgf, or concat for the ablation."),
    tile: int = typer.Option(256, help="Tile size (pixels) the MACs are counted at."),
) -> None:
    """Parameters and multiply-accumulates per module."""
    from .model import build_model
    from .model.profile import module_costs

    model = build_model(config, fusion=fusion)
    table = Table(title=f"TDP-CR {config} ({fusion}), one {tile}x{tile} tile")
    for col in ("module", "params", "MACs (G)"):
        table.add_column(col, justify="left" if col == "module" else "right")
    for row in module_costs(model, tile):
        table.add_row(row.name, f"{row.params:,}", f"{row.macs / 1e9:.3f}", style="bold" if row.name == "total" else None)
    console.print(table)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output folder; one sub-folder per scene."),
    scenes: int = typer.Option(8, help="Number of scenes."),
    size: int = typer.Option(256, help="Scene width and height in pixels."),
    seed: int = typer.Option(0, help="World seed; scene i is the same for the same seed and size."),
    classes: int = typer.Option(6, help="Number of land-cover classes (2..6)."),
) -> None:
    """Write synthetic georeferenced scenes (cloudy and clear optical, SAR, labels, cloud)."""
    from .data.scenes import write_synthetic

    with progress_bar("synth", scenes) as advance:
        written = write_synthetic(out, scenes, size, seed, classes, on_scene=advance)
    console.print(f"wrote {len(written)} scenes of {size}x{size} px to {out}")


@app.command()
def train(
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint.pt, model.pt, best-phaseN.pt, metrics.json, curves.png."),
    config: str = typer.Option("tiny", help="Model config: tiny or base."),
    fusion: str = typer.Option("pgf", help="Fusion: pgf, or concat for the ablation."),
    data: str = typer.Option("synthetic", help="'synthetic', a folder written by `synth`, sen12mscr:ROOT, luojia:ROOT or pairs:CSV (train split)."),
    steps: int = typer.Option(1500, help="Optimisation steps per phase."),
    phase: str = typer.Option("both", help="1 (reconstruction), 2 (semantics) or both."),
    batch: int = typer.Option(8, help="Global batch: samples per optimisation step over all processes and accumulation steps."),
    patch: int = typer.Option(64, help="Training patch size in pixels (a random crop of each sample)."),
    lr: float = typer.Option(2e-3, help="Peak learning rate (cosine schedule)."),
    seed: int = typer.Option(0, help="Seed for weights and data."),
    save_every: int = typer.Option(100, help="Checkpoint every N steps."),
    resume: bool = typer.Option(True, help="Continue from OUT/checkpoint.pt when present."),
    init: Optional[Path] = typer.Option(None, help="Phase-1 checkpoint to start --phase 2 from."),
    qat: bool = typer.Option(False, "--qat", help="Quantisation-aware: simulate the INT8 export's rounding while training."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N; under torchrun, cuda is each process's LOCAL_RANK GPU."),
    amp: str = typer.Option("off", help="Mixed precision: off, bf16 (Ampere+ GPUs, CPUs with AVX512-BF16 or AMX) or fp16 (CUDA, with loss scaling)."),
    compile_step: bool = typer.Option(False, "--compile", help="torch.compile the training step."),
    workers: int = typer.Option(0, help="DataLoader worker processes per training process (0: read in the training process)."),
    accumulate: int = typer.Option(1, help="Micro-batches per step and process: micro-batch = batch / (processes x accumulate)."),
    val_every: int = typer.Option(0, help="Validate every N steps (0: at the end of each phase only); the best model is kept."),
    val_data: Optional[str] = typer.Option(None, help="Held-out data (a --data spec) instead of the training data's val split."),
    val_samples: Optional[int] = typer.Option(None, help="At most N held-out samples (default: 8 synthetic scenes, or the whole val split)."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Under torchrun on GPUs: batch-norm statistics over all processes (SyncBatchNorm)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic algorithms only (torch.use_deterministic_algorithms)."),
) -> None:
    """Two-phase training: reconstruction first, then parameter-efficient semantics. Under
    torchrun (torchrun --nproc_per_node=N --no-python tdpcr-edge train ...) the processes
    share each global batch."""
    from .train import TrainOptions
    from .train import train as run_train
    from .train.distributed import from_env
    from .train.trainer import _phases

    opts = TrainOptions(out=out, config=config, fusion=fusion, data=data, phase=phase, steps=steps, batch=batch, patch=patch, lr=lr, seed=seed,
                        save_every=save_every, resume=resume, init=init, qat=qat, device=device, amp=amp, compile=compile_step, workers=workers,
                        accumulate=accumulate, val_every=val_every, val_data=val_data, val_scenes=val_samples, sync_bn=sync_bn,
                        deterministic=deterministic)
    total = steps * len(_phases(phase))
    main = from_env().main
    # Under torchrun only rank 0 draws the bar and prints the table; every rank reports its errors.
    bar = progress_bar("train", total) if main else contextlib.nullcontext(lambda *a, **k: None)
    with bar as advance:
        def on_step(ph: int, step: int, n: int, loss: float) -> None:
            advance(1, description=f"phase {ph} loss {loss:.4f}")

        metrics = run_train(opts, on_step=on_step)
    if not main:
        return
    console.print(f"data: {metrics['data']}", highlight=False)
    # A quantisation-aware run validates with INT8 rounding simulated, as it trains.
    table = Table(title=f"{out}: validation ({metrics['validation']}){' with INT8 simulated' if qat else ''}; "
                        f"{metrics['world_size']} process(es) on {metrics['device']}")
    for col in ("phase", "trainable params", "seconds", "PSNR dB", "thick PSNR", "SSIM", "SAM deg", "mIoU %", "best"):
        table.add_column(col, justify="right")
    for ph, rec in metrics["phases"].items():
        val = (rec.get("val") or {}).get("model", {})
        thick = (rec.get("val") or {}).get("bins", {}).get("thick", {}).get("model", {})
        best = rec.get("best")
        table.add_row(ph, f"{rec['trainable_params']:,}", f"{rec['seconds']:.0f}", _fmt(val.get("psnr")), _fmt(thick.get("psnr")), _fmt(val.get("ssim"), 3),
                      _fmt(val.get("sam")), _fmt(val.get("miou"), 1), f"step {best['step']}" if best else "-")
    console.print(table)
    for ph, rec in metrics["phases"].items():
        if rec.get("seconds") and rec.get("samples"):
            console.print(f"phase {ph}: {rec['samples'] / rec['seconds']:.1f} samples/s, waiting on data {100 * rec.get('data_wait_s', 0) / rec['seconds']:.0f}% "
                          f"of the step time{' (try --workers N)' if rec.get('data_wait_s', 0) > 0.1 * rec['seconds'] else ''}", highlight=False)
    console.print(f"wrote {out / 'model.pt'}, {out / 'metrics.json'}, {out / 'curves.png'}", highlight=False)


def print_eval(result: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("pixels", "input PSNR", "model PSNR", "gain dB", "SSIM in/out", "SAM in/out", "mIoU %", "OA %"):
        table.add_column(col, justify="right")
    rows = [("all", result["model"], result["input"])] + [(k, v["model"], v["input"]) for k, v in result["bins"].items()]
    for name, m, i in rows:
        gain = m.get("psnr", 0) - i.get("psnr", 0) if "psnr" in m and "psnr" in i else None
        table.add_row(
            name, _fmt(i.get("psnr")), _fmt(m.get("psnr")), _fmt(gain),
            f"{_fmt(i.get('ssim'), 3)} / {_fmt(m.get('ssim'), 3)}", f"{_fmt(i.get('sam'), 1)} / {_fmt(m.get('sam'), 1)}",
            _fmt(m.get("miou"), 1), _fmt(m.get("oa"), 1),
        )
    console.print(table)


@app.command("eval")
def eval_cmd(
    data: str = typer.Option(..., help="Scene folder written by `synth`, sen12mscr:ROOT, luojia:ROOT or pairs:CSV (test split by default)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint; the shipped tiny model when left out."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics here."),
    quicklook: Optional[Path] = typer.Option(None, help="Write a quick-look PNG of the first scenes here."),
) -> None:
    """Score reconstruction (PSNR, SSIM, SAM, MAE) and segmentation (mIoU, OA), by cloud bin."""
    from .evaluate import run_eval

    with progress_bar("eval", None) as advance:
        result = run_eval(data, checkpoint, json_out, quicklook, on_scene=advance, on_start=lambda n: advance(0, total=n))
    from .data.datasets import parse_spec

    # A data set's items are patches (SEN12MS-CR) or samples, not scenes.
    unit = {"folder": "scenes", "sen12mscr": "patches"}.get(parse_spec(data)[0], "samples")
    print_eval(result, f"{result['scenes']} {unit} in {data}, checkpoint {Path(result['checkpoint']['path']).name}")
    for path in (json_out, quicklook):
        if path:
            console.print(f"wrote {path}")
    print_warnings(result)


@app.command()
def ablation(
    out: Path = typer.Option(..., "--out", help="Folder for the runs (OUT/seed-S/pgf, OUT/seed-S/concat), ablation.json and ablation.md."),
    config: str = typer.Option("tiny", help="Model config."),
    steps: int = typer.Option(1500, help="Steps per phase, the same for both variants."),
    seeds: str = typer.Option("0", help="Training seeds, comma-separated (e.g. 0,1,2); each trains both variants."),
    qat: bool = typer.Option(False, "--qat", help="Train both variants quantisation-aware and also score them in INT8 (simulated)."),
    eval_seed: int = typer.Option(7, help="Seed of the held-out scenes (never used in training)."),
    eval_scenes: int = typer.Option(32, help="Held-out scenes."),
    eval_size: int = typer.Option(128, help="Held-out scene size in pixels."),
) -> None:
    """PGF against concatenation fusion at an equal training budget, over training seeds."""
    from .ablation import run_ablation

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {seeds!r}: give integers separated by commas, e.g. 0,1,2") from None
    if not seed_list:
        raise ConfigError("--seeds is empty: give at least one training seed, e.g. 0")
    with progress_bar("ablation", len(seed_list) * 2 * 2 * steps) as advance:
        run_ablation(out, config, steps, seed_list, eval_seed, eval_scenes, eval_size, qat=qat, on_step=lambda *a: advance(1))
    console.print((out / "ablation.md").read_text())


@app.command()
def export(
    out: Path = typer.Option(..., "--out", help="Artifact folder: model.onnx, checkpoint.pt, manifest.json, drift.json."),
    precision: Optional[str] = typer.Option(None, help="fp32, fp16, bf16 (OpenVINO on CPUs with AMX or AVX512_BF16), int8 or mixed (default: the target's, else fp16)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint; the shipped tiny model when left out."),
    target: Optional[str] = typer.Option(None, help="Deployment profile from export/profiles (sets precision, tile, drift backend; a CPU profile picks the precision from this CPU's ISA)."),
    backend: Optional[str] = typer.Option(None, help="Runtime the drift is measured on: ort or openvino (default: the target's, else ort; openvino for bf16)."),
    int8_placement: Optional[str] = typer.Option(None, help="INT8 activations: tensorrt (symmetric INT8) or cpu (UINT8 where non-negative); default: the target's, else tensorrt."),
    calib: str = typer.Option("synthetic", help="Calibration data for int8/mixed: 'synthetic', a scene folder or a data-set spec (val split)."),
    calib_tiles: int = typer.Option(32, help="Calibration tiles."),
    calib_method: str = typer.Option("percentile", help="Activation calibration: percentile, entropy or minmax."),
    eval_data: str = typer.Option("synthetic", help="Held-out data the drift is measured on."),
    eval_tiles: int = typer.Option(16, help="Held-out tiles for the drift."),
    tile: Optional[int] = typer.Option(None, help="Tile size in pixels (default: the target's, else 256)."),
    plugin: bool = typer.Option(False, "--plugin", help="One TDP_PGF node per PGF instead of its decomposition."),
    drift_budget: Optional[str] = typer.Option(None, help="Largest allowed drift, e.g. psnr=0.3,miou=1.0 (the default)."),
    allow_drift: bool = typer.Option(False, "--allow-drift", help="Write the artifact even when the drift is over budget."),
) -> None:
    """Export to ONNX at a precision, measure its drift against torch FP32, gate on a budget."""
    from .export import ExportOptions, run_export

    opts = ExportOptions(out=out, precision=precision, checkpoint=checkpoint, target=target, calib=calib, calib_tiles=calib_tiles,
                         calib_method=calib_method, eval_data=eval_data, eval_tiles=eval_tiles, tile=tile, plugin=plugin,
                         drift_budget=drift_budget, allow_drift=allow_drift, backend=backend, int8_placement=int8_placement)
    with err_console.status("export") as status:
        manifest = run_export(opts, on_stage=lambda name: status.update(f"export: {name}"))
    d = manifest["drift"]
    verdict = "within budget" if d["within_budget"] else "[bold red]OVER BUDGET[/] (kept: --allow-drift)"
    console.print(
        f"{out}: {manifest['precision']}{' + TDP_PGF plugin' if manifest['plugin']['enabled'] else ''}, "
        f"{manifest['model_bytes'] / 2**20:.2f} MB, tile {manifest['tile']}; on {d['tiles']} held-out tiles, {d['backend']} vs torch FP32: "
        f"dPSNR {d['psnr_delta']:+.3f} dB, dmIoU {d['miou_delta']:+.2f} pt, max |err| {d['max_abs_error']:.2e}; {verdict}"
    )
    if manifest["target"]:
        console.print(f"target {manifest['target']}: {manifest['precision']} because {manifest['runtime']['precision_chosen_by']}; "
                      f"`tdpcr-edge infer --model {out}` runs it on {manifest['runtime']['backend']}", highlight=False)
    if manifest["fp16_fallback_layers"]:
        console.print(f"FP16 fallback layers ({len(manifest['fp16_fallback_layers'])}): {', '.join(manifest['fp16_fallback_layers'])}")


def print_compare(rows: list[dict]) -> None:
    table = Table(title="drift against torch FP32, same held-out tiles")
    for col in ("artifact", "precision", "backend", "plugin", "MB", "PSNR dB", "dPSNR dB", "dSSIM", "dSAM deg", "mIoU %", "dmIoU pt", "max |err|", "class agree %", "budget"):
        table.add_column(col, justify="left" if col in ("artifact", "precision", "backend") else "right")
    for r in rows:
        table.add_row(
            Path(r["artifact"]).name, r["precision"], r["backend"], "yes" if r["plugin"] else "no", f"{r['model_mb']:.2f}", f"{r['psnr']:.2f}",
            f"{r['psnr_delta']:+.3f}", f"{r['ssim_delta']:+.4f}", f"{r['sam_delta']:+.3f}", f"{r['miou']:.1f}", f"{r['miou_delta']:+.2f}",
            f"{r['max_abs_error']:.2e}", f"{r['class_agreement']:.2f}", "ok" if not r["over_budget"] else "OVER: " + "; ".join(r["over_budget"]),
        )
    console.print(table)


@app.command()
def compare(
    artifacts: list[Path] = typer.Argument(..., help="Artifact folders written by `tdpcr-edge export`."),
    data: str = typer.Option("synthetic", help="'synthetic' (held-out seed) or a scene folder."),
    tiles: int = typer.Option(16, help="Tiles to measure on (16 synthetic held-out tiles: the export gate's own)."),
    backend: str = typer.Option("auto", help="auto (the backend each artifact's gate used), ort or openvino."),
) -> None:
    """The drift table of several artifacts side by side."""
    from .export import compare_artifacts

    with err_console.status("compare"):
        rows = compare_artifacts(artifacts, data, tiles, backend)
    print_compare(rows)


@app.command()
def infer(
    out: Path = typer.Option(..., "--out", help="Output folder (one sub-folder per scene with --pairs)."),
    optical: Optional[Path] = typer.Option(None, help="Cloudy optical GeoTIFF."),
    sar: Optional[Path] = typer.Option(None, help="SAR GeoTIFF (VV, VH in dB) on the same grid, or use --align."),
    pairs: Optional[str] = typer.Option(None, help="CSV with columns optical,sar[,reference][,labels][,cloud][,name], or a data-set spec (sen12mscr:ROOT, luojia:ROOT, pairs:CSV)."),
    model: Optional[str] = typer.Option(None, help="Checkpoint, artifact folder, engine folder, or a bench report.json (its fastest row within the drift budget); default: the shipped checkpoint."),
    backend: str = typer.Option("auto", help="auto (an artifact's own backend), torch, ort, openvino or trt."),
    tile: int = typer.Option(256, help="Tile size in pixels."),
    overlap: int = typer.Option(32, help="Overlap between tiles in pixels."),
    batch: Optional[int] = typer.Option(None, help="Tiles per inference batch (default 4, split among the workers; with --ray, 2 per CPU of a worker)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its journal."),
    skip_clear: bool = typer.Option(False, "--skip-clear", help="Skip the model on tiles a cheap cloud score finds clear."),
    align: bool = typer.Option(False, "--align", help="Reproject the SAR onto the optical grid."),
    reference: Optional[Path] = typer.Option(None, help="Cloud-free reference GeoTIFF: score the reconstruction."),
    labels: Optional[Path] = typer.Option(None, help="Land-cover labels GeoTIFF: score the classes."),
    cloud: Optional[Path] = typer.Option(None, help="Cloud-thickness GeoTIFF: scores by thickness bin."),
    compress: str = typer.Option("zstd", help="COG compression: zstd, deflate (for GDAL < 2.3 readers), lzw or none."),
    workers: Optional[int] = typer.Option(None, help="Concurrent inference calls, each on its share of the CPU cores (default: 2 on CPU backends with 2+ cores; GPU backends run 1). With --ray: the number of Ray workers."),
    ray: Optional[str] = typer.Option(None, "--ray", help="With --pairs: run the scenes on Ray: local (a private local instance), auto (this machine's cluster) or a cluster ADDRESS."),
    cpus_per_worker: float = typer.Option(1.0, help="With --ray: CPUs each Ray worker holds (its runner's threads)."),
    gpus_per_worker: float = typer.Option(0.0, help="With --ray: GPUs each Ray worker holds."),
    max_retries: int = typer.Option(3, help="With --ray: runs of a scene after its worker died."),
) -> None:
    """Stream whole scenes through the model: COG outputs, run.json, quick look; with --pairs a
    whole archive (in this process or on Ray) with a summary."""
    from .runtime.stream import StreamOptions, run_stream, scene_jobs

    if pairs is None and ray is not None:
        raise ConfigError("--ray runs a list of scenes: pass --pairs LIST.csv (or a data-set spec)")
    if batch is None:
        # In this process a batch of 4 is split between two single-threaded workers on two
        # cores: calls of 2 tiles per core. A Ray worker streams alone on its CPU share, and
        # calls of 4 tiles on one core ran 25% slower per tile than 2 (docs/streaming.md).
        batch = max(1, round(2 * cpus_per_worker)) if ray else 4
    if pairs is not None:
        run_pairs(scene_jobs(pairs), out, ray, dict(model=model, backend=backend, tile=tile, overlap=overlap, batch=batch, skip_clear=skip_clear,
                                                    align=align, compress=compress, workers=workers), cpus_per_worker, gpus_per_worker, max_retries)
        return
    if optical is None or sar is None:
        raise ConfigError("pass --optical and --sar, or --pairs LIST.csv")
    opts = StreamOptions(optical=optical, sar=sar, out=out, model=model, backend=backend, tile=tile, overlap=overlap, batch=batch, resume=resume,
                         skip_clear=skip_clear, align=align, reference=reference, labels=labels, cloud=cloud, compress=compress, workers=workers)
    with progress_bar(f"infer {out.name}", None) as advance:
        record = run_stream(opts, on_tile=advance, on_start=lambda n: advance(0, total=n))
    print_run(out, record)
    print_warnings(record)


def run_pairs(jobs: list[dict], out: Path, ray: str | None, stream: dict, cpus: float, gpus: float, retries: int) -> None:
    from .runtime.archive import ArchiveOptions, run_archive

    # With --ray, --workers counts Ray workers; each streams its scene with the default
    # inference workers for its CPU share.
    opts = ArchiveOptions(out=out, stream={**stream, "workers": None} if ray else stream, ray=ray, workers=stream["workers"] if ray else None,
                          cpus_per_worker=cpus, gpus_per_worker=gpus, max_retries=retries)
    with progress_bar("archive scenes", len(jobs)) as advance:
        summary = run_archive(jobs, opts, on_scene=lambda row: advance(1, description=f"archive scenes ({row['name']}: {row['status']})"),
                              on_start=lambda n, skipped: advance(skipped))
    table = Table(title=f"{out}: {summary['done']} streamed, {summary['skipped']} skipped as complete, {summary['failed']} failed; "
                        f"{summary['tiles']} tiles at {_fmt(summary['tiles_per_s'])} tiles/s ({summary['engine']})")
    for col in ("scene", "status", "tiles", "tiles/s", "PSNR dB", "mIoU %", "attempts"):
        table.add_column(col, justify="left" if col in ("scene", "status") else "right")
    for r in summary["rows"]:
        table.add_row(r["name"], r["status"], str(r.get("tiles") or "-"), _fmt(r.get("tiles_per_s")), _fmt(r.get("psnr")), _fmt(r.get("miou"), 1), str(r["attempts"]))
    console.print(table)
    for r in summary["rows"]:
        if r.get("error"):
            err_console.print(f"[bold red]error:[/] {escape(r['name'])}: {escape(r['error'])}", highlight=False, soft_wrap=True)
    console.print(f"wrote {out / 'summary.json'}, {out / 'summary.md'}")
    print_warnings(summary)
    if summary["failed"]:
        raise typer.Exit(2)


def print_warnings(record: dict) -> None:
    for text in record.get("warnings", []):
        err_console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def print_run(folder: Path, r: dict) -> None:
    t, lat = r["tiles"], r["latency_ms_per_tile"]
    console.print(
        f"{folder}: {r['inputs']['size'][0]}x{r['inputs']['size'][1]} px, {t['processed']} tiles ({t['skipped_clear']} skipped as clear) "
        f"in {r['wall_s']:.1f} s = {r['tiles_per_s']:.2f} tiles/s, {r['model']['backend']} backend, peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    console.print("  ms per tile: " + ", ".join(f"{k} {v:.1f}" for k, v in lat.items()))
    if "accuracy" in r:
        m, i = r["accuracy"]["model"], r["accuracy"]["input"]
        parts = []
        if "psnr" in m:
            parts.append(f"PSNR {i.get('psnr', float('nan')):.2f} -> {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, SAM {m['sam']:.2f} deg")
        if "miou" in m:
            parts.append(f"mIoU {m['miou']:.1f} %, OA {m['oa']:.1f} %")
        for name, b in r["accuracy"]["bins"].items():
            if "psnr" in b["model"]:
                parts.append(f"{name}: {b['input'].get('psnr', float('nan')):.1f} -> {b['model']['psnr']:.1f} dB")
        console.print("  accuracy: " + "; ".join(parts))


def print_bench(report: dict) -> None:
    from .report.bench_report import budget_mark, fastest_within_budget, pareto_front, row_label

    rows = report["rows"]
    front = set(pareto_front(rows, "psnr")) | set(pareto_front(rows, "miou"))
    table = Table(title=f"accuracy against latency: {report['device_label']}, {report['date']}, {report.get('tiles', '?')} tiles")
    for col in ("backend / precision", "MB", "PSNR dB", "dPSNR dB", "mIoU %", "dmIoU pt", "budget", "p50 ms", "p95 ms", "tiles/s", "peak MB", "start s", "Pareto"):
        table.add_column(col, justify="left" if col == "backend / precision" else "right")
    for i, r in enumerate(rows):
        table.add_row(
            row_label(r), _fmt(r["model_mb"]), _fmt(r["psnr"]), _fmt(r["psnr_delta"], 3), _fmt(r["miou"], 1), _fmt(r["miou_delta"]),
            budget_mark(r), _fmt(r["latency_ms_p50"], 1), _fmt(r["latency_ms_p95"], 1), _fmt(r["tiles_per_s"]), _fmt(r["peak_mem_mb"], 0),
            _fmt(r.get("start_s"), 1), "*" if i in front else "",
        )
    console.print(table)
    best = fastest_within_budget(report)
    if best is not None:
        console.print(f"fastest within the drift budget: {row_label(best)}, {best['latency_ms_p50']:.1f} ms per tile", highlight=False)
    for s in report.get("skipped", []):
        console.print(f"  not run: {row_label(s)}: {s['reason']}", highlight=False, markup=False)


@app.command()
def bench(
    report: Path = typer.Option(..., "--report", help="Folder for report.json, report.md, report.png (and artifacts/, engines/)."),
    checkpoint: Optional[Path] = typer.Option(None, help="Checkpoint; the shipped tiny model when left out."),
    precisions: str = typer.Option("fp32,fp16,bf16,int8,mixed", help="Comma-separated precisions."),
    backends: str = typer.Option("torch,ort,openvino,trt", help="Comma-separated backends; rows this machine cannot run are listed with the reason."),
    data: str = typer.Option("synthetic", help="Held-out data: 'synthetic', a scene folder or a data-set spec (test split)."),
    tiles: int = typer.Option(16, help="Held-out tiles."),
    tile: int = typer.Option(256, help="Tile size in pixels."),
    warmup: int = typer.Option(3, help="Untimed calls before timing."),
    iterations: int = typer.Option(20, help="Timed calls per row."),
    artifacts: Optional[Path] = typer.Option(None, help="Where artifacts are reused from or exported to (default REPORT/artifacts)."),
    calib: str = typer.Option("synthetic", help="Calibration data for int8/mixed exports."),
    calib_tiles: int = typer.Option(32, help="Calibration tiles for the exports bench makes."),
    eval_tiles: int = typer.Option(16, help="Held-out tiles of the exports' own drift gate."),
    target: Optional[str] = typer.Option(None, help="Target profile of the exports bench makes (x86-cpu: CPU INT8 placement, gates on OpenVINO)."),
    drift_budget: Optional[str] = typer.Option(None, help="Budget every row is marked against, e.g. psnr=0.3,miou=1.0 (the default)."),
    skip: str = typer.Option("", help="Rows to leave out, comma-separated names, e.g. torch-fp32-compile-cpu."),
) -> None:
    """Every backend and precision on the same held-out tiles: accuracy, latency, memory; report files."""
    from .bench import BenchOptions, run_bench
    from .report.bench_report import write_report

    opts = BenchOptions(report=report, checkpoint=checkpoint, backends=backends, precisions=precisions, data=data, tiles=tiles, tile=tile,
                        warmup=warmup, iterations=iterations, artifacts=artifacts, calib=calib, calib_tiles=calib_tiles, eval_tiles=eval_tiles,
                        target=target, drift_budget=drift_budget, skip=skip)
    with err_console.status("bench") as status:
        result = run_bench(opts, on_stage=lambda name: status.update(f"bench: {name}"))
    print_bench(result)
    for path in write_report(result, report):
        console.print(f"wrote {path}")


@app.command("report")
def report_cmd(
    benchmark_json: Path = typer.Argument(..., help="pytest-benchmark output: pytest benchmarks --benchmark-only --benchmark-json FILE"),
    out: Path = typer.Option(..., "--report", help="Folder for report.json, report.md, report.png."),
) -> None:
    """Turn pytest-benchmark JSON into the same report `tdpcr-edge bench` writes."""
    from .report.bench_report import from_benchmark_json, write_report

    result = from_benchmark_json(benchmark_json)
    for path in write_report(result, out):
        console.print(f"wrote {path}")


@app.command("build-engine")
def build_engine_cmd(
    artifact: Path = typer.Argument(..., help="Artifact folder written by `tdpcr-edge export`."),
    out: Path = typer.Option(..., "--out", help="Engine folder: model.engine and engine.json."),
    target: Optional[str] = typer.Option(None, help="Deployment profile (max batch and workspace defaults)."),
    plugin_lib: Optional[Path] = typer.Option(None, help="libtdpcr_trt_plugin.so, for graphs with TDP_PGF nodes."),
    timing_cache: Optional[Path] = typer.Option(None, help="Timing cache to reuse and update."),
    workspace: Optional[int] = typer.Option(None, help="Builder workspace in MiB."),
    max_batch: Optional[int] = typer.Option(None, help="Largest batch of the optimisation profile."),
) -> None:
    """Build a TensorRT engine from an artifact, on the device that will run it."""
    from .export.engine import build_engine

    kwargs = dict(target=target, plugin_lib=plugin_lib, timing_cache=timing_cache, workspace_mb=workspace, max_batch=max_batch)
    # build_engine checks the artifact, its graph and the options before TensorRT is needed.
    with err_console.status("building the TensorRT engine (minutes on a Jetson)"):
        record = build_engine(artifact, out, **kwargs)
    console.print(f"wrote {out}/model.engine: TensorRT {record['tensorrt']}, {record['gpu']['name']} (SM {record['gpu']['sm']}), {record['precision']}")
    console.print(f"equivalent trtexec command:\n  {record['trtexec']}", highlight=False)


@app.command()
def check(
    artifact: Path = typer.Argument(..., help="Artifact folder written by `tdpcr-edge export` (or an .onnx file)."),
    target: str = typer.Option(..., help="Deployment profile: can its runtime take this graph?"),
    plugin_lib: Optional[Path] = typer.Option(None, help="A built libtdpcr_trt_plugin.so: check plugin nodes against its creators."),
) -> None:
    """Can the target's TensorRT take this graph? Operators, types, Q/DQ rules, plugin nodes,
    input shapes; one line per problem naming the node, exit 2 when it cannot."""
    from .export.trt_check import check_artifact

    problems, table = check_artifact(artifact, target, plugin_lib)
    for p in problems:
        err_console.print(f"[bold red]error:[/] {escape(str(artifact))}: {escape(p.line())}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"{artifact}: {target} can take this graph (operators checked against the TensorRT ONNX parser's {table} table)"
                  if table else f"{artifact}: {target} can take this graph", highlight=False)


@app.command()
def doctor() -> None:
    """What this machine has: torch, ONNX Runtime, TensorRT, CUDA, GPUs, kernels, profile."""
    from .doctor import diagnose

    table = Table(title="tdpcr-edge doctor")
    for col in ("item", "status", "detail"):
        table.add_column(col)
    for row in diagnose():
        style = {"ok": "green", "missing": "yellow"}.get(row.status)
        table.add_row(row.item, f"[{style}]{row.status}[/]" if style else row.status, row.detail)
    console.print(table)


def main() -> None:
    try:
        app()
    except TdpcrError as exc:
        # escape: messages name things like [splits] that rich would take for markup and drop.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
