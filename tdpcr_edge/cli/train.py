"""`tdpcr-edge train`: two-phase training, on one process or under torchrun."""

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .console import console, fmt, progress_bar
from .options import choices, positive, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def train(
        out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoint.pt, model.pt, best-phaseN.pt, metrics.json, curves.png.")],
        arch: c.Arch = "tdpcr",
        config: c.Config = "small",
        fusion: c.Fusion = "pgf",
        data: Annotated[
            str, typer.Option(help="'synthetic', a folder written by `synth`, sen12mscr:ROOT, luojia:ROOT or pairs:CSV (train split).")
        ] = "synthetic",
        steps: Annotated[int, typer.Option(min=1, help="Optimisation steps per phase.")] = 1500,
        phase: Annotated[c.phase, typer.Option(help="1 (reconstruction), 2 (semantics) or both.")] = "both",
        batch: Annotated[
            int, typer.Option(min=1, help="Global batch: samples per optimisation step over all processes and accumulation steps.")
        ] = 8,
        patch: Annotated[
            int, typer.Option(min=8, help="Training patch size in pixels (a random crop of each sample; a multiple of the model's stride).")
        ] = 64,
        lr: Annotated[float, typer.Option(callback=positive, help="Peak learning rate (cosine schedule).")] = 2e-3,
        seed: Annotated[int, typer.Option(min=0, help="Seed for weights and data.")] = 0,
        save_every: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps.")] = 100,
        resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt when present.")] = True,
        init: Annotated[
            Optional[Path],
            typer.Option(
                help="Checkpoint to start from ('shipped': the shipped one): fine-tuned from with --phase 1/both (same bands), the "
                "phase-1 checkpoint with --phase 2."
            ),
        ] = None,
        bands: Annotated[
            Optional[str],
            typer.Option(
                help="Optical bands: s2-l1c (13, default), s2-l2a (12), s2-rgbn (B02,B03,B04,B08) or a list B02,B03,...; read by name "
                "from any input layout."
            ),
        ] = None,
        qat: Annotated[bool, typer.Option("--qat", help="Quantisation-aware: simulate the INT8 export's rounding while training.")] = False,
        device: Annotated[
            str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N; under torchrun, cuda is each process's LOCAL_RANK GPU.")
        ] = "auto",
        amp: Annotated[
            c.amp,
            typer.Option(help="Mixed precision: off, bf16 (Ampere+ GPUs, CPUs with AVX512-BF16 or AMX) or fp16 (CUDA, with loss scaling)."),
        ] = "off",
        compile_step: Annotated[bool, typer.Option("--compile", help="torch.compile the training step.")] = False,
        workers: Annotated[
            int, typer.Option(min=0, help="DataLoader worker processes per training process (0: read in the training process).")
        ] = 0,
        accumulate: Annotated[
            int, typer.Option(min=1, help="Micro-batches per step and process: micro-batch = batch / (processes x accumulate).")
        ] = 1,
        val_every: Annotated[
            int, typer.Option(min=0, help="Validate every N steps (0: at the end of each phase only); the best model is kept.")
        ] = 0,
        val_data: Annotated[
            Optional[str], typer.Option(help="Held-out data (a --data spec) instead of the training data's val split.")
        ] = None,
        val_samples: Annotated[
            Optional[int], typer.Option(min=1, help="At most N held-out samples (default: 8 synthetic scenes, or the whole val split).")
        ] = None,
        sync_bn: Annotated[
            bool, typer.Option("--sync-bn", help="Under torchrun on GPUs: batch-norm statistics over all processes (SyncBatchNorm).")
        ] = False,
        deterministic: Annotated[
            bool, typer.Option("--deterministic", help="Deterministic algorithms only (torch.use_deterministic_algorithms).")
        ] = False,
    ) -> None:
        """Two-phase training: reconstruction first, then parameter-efficient semantics. Under
        torchrun (torchrun --nproc_per_node=N --no-python tdpcr-edge train ...) the processes
        share each global batch."""
        from ..train import TrainOptions
        from ..train import train as run_train
        from ..train.distributed import from_env

        opts = TrainOptions(
            out=out,
            arch=value(arch),
            config=value(config),
            fusion=value(fusion),
            data=data,
            phase=value(phase),
            steps=steps,
            batch=batch,
            patch=patch,
            lr=lr,
            seed=seed,
            save_every=save_every,
            resume=resume,
            init=init,
            bands=bands,
            qat=qat,
            device=device,
            amp=value(amp),
            compile=compile_step,
            workers=workers,
            accumulate=accumulate,
            val_every=val_every,
            val_data=val_data,
            val_scenes=val_samples,
            sync_bn=sync_bn,
            deterministic=deterministic,
        )
        main = from_env().main
        # Under torchrun only rank 0 draws the bar and prints the table; every rank reports its errors.
        bar = progress_bar("train", opts.total_steps) if main else contextlib.nullcontext(lambda *a, **k: None)
        with bar as advance:
            metrics = run_train(opts, on_step=lambda ph, step, n, loss: advance(1, description=f"phase {ph} loss {loss:.4f}"))
        if main:
            print_training(out, metrics, qat)


def print_training(out: Path, metrics: dict, qat: bool) -> None:
    console.print(f"data: {metrics['data']}", highlight=False)
    # A quantisation-aware run validates with INT8 rounding simulated, as it trains.
    table = Table(
        title=f"{out}: validation ({metrics['validation']}){' with INT8 simulated' if qat else ''}; "
        f"{metrics['world_size']} process(es) on {metrics['device']}"
    )
    for col in ("phase", "trainable params", "seconds", "PSNR dB", "thick PSNR", "SSIM", "SAM deg", "mIoU %", "best"):
        table.add_column(col, justify="right")
    for ph, rec in metrics["phases"].items():
        val = (rec.get("val") or {}).get("model", {})
        thick = (rec.get("val") or {}).get("bins", {}).get("thick", {}).get("model", {})
        best = rec.get("best")
        table.add_row(
            ph,
            f"{rec['trainable_params']:,}",
            f"{rec['seconds']:.0f}",
            fmt(val.get("psnr")),
            fmt(thick.get("psnr")),
            fmt(val.get("ssim"), 3),
            fmt(val.get("sam")),
            fmt(val.get("miou"), 1),
            f"step {best['step']}" if best else "-",
        )
    console.print(table)
    for ph, rec in metrics["phases"].items():
        if rec.get("seconds") and rec.get("samples"):
            wait = 100 * rec.get("data_wait_s", 0) / rec["seconds"]
            hint = " (try --workers N)" if rec.get("data_wait_s", 0) > 0.1 * rec["seconds"] else ""
            console.print(
                f"phase {ph}: {rec['samples'] / rec['seconds']:.1f} samples/s, waiting on data {wait:.0f}% of the step time{hint}",
                highlight=False,
            )
    console.print(f"wrote {out / 'model.pt'}, {out / 'metrics.json'}, {out / 'curves.png'}", highlight=False)
