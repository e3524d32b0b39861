"""`tdpcr-edge export`: an artifact at a precision, its drift measured and gated."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..drift import miou_text
from .console import console, stage_status
from .options import Calib, CalibTiles, Checkpoint, DriftBudget, EvalTiles, choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def export(
        out: Annotated[Path, typer.Option("--out", help="Artifact folder: model.onnx, checkpoint.pt, manifest.json, drift.json.")],
        precision: Annotated[
            Optional[c.precision],
            typer.Option(
                help="Artifact precision (default: the target's, else fp16); bf16 runs on OpenVINO on CPUs with AMX or AVX512_BF16."
            ),
        ] = None,
        checkpoint: Checkpoint = None,
        target: Annotated[
            Optional[c.target],
            typer.Option(
                help="Deployment profile (sets precision, tile, drift backend; a CPU profile picks the precision from this CPU's ISA)."
            ),
        ] = None,
        backend: Annotated[
            Optional[c.drift_backend],
            typer.Option(help="Runtime the drift is measured on (default: the target's, else ort; openvino for bf16)."),
        ] = None,
        int8_placement: Annotated[
            Optional[c.placement],
            typer.Option(
                help="INT8 activations: tensorrt (symmetric INT8), cpu (UINT8 where non-negative; x86 with VNNI) or cpu-no-vnni (as cpu, "
                "every u8 x s8 pair sum within 16 bits: x86 without VNNI); default: the target's (x86-cpu: by this CPU's ISA), else "
                "tensorrt."
            ),
        ] = None,
        calib: Calib = "synthetic",
        calib_tiles: CalibTiles = 32,
        calib_method: Annotated[c.calib_method, typer.Option(help="Activation calibration.")] = "percentile",
        eval_data: Annotated[str, typer.Option(help="Held-out data the drift is measured on.")] = "synthetic",
        eval_tiles: EvalTiles = 16,
        tile: Annotated[Optional[int], typer.Option(min=8, help="Tile size in pixels (default: the target's, else 256).")] = None,
        plugin: Annotated[bool, typer.Option("--plugin", help="One TDP_PGF node per PGF instead of its decomposition.")] = False,
        drift_budget: DriftBudget = None,
        without_checkpoint: Annotated[
            bool,
            typer.Option("--without-checkpoint", help="Leave checkpoint.pt out: runtimes need only the graph (torch backends need it)."),
        ] = False,
        allow_drift: Annotated[
            bool,
            typer.Option("--allow-drift", help="Write the artifact even when the drift is over budget (else exit 3, nothing written)."),
        ] = False,
    ) -> None:
        """Export to ONNX at a precision, measure its drift against torch FP32, gate on a budget."""
        from ..export import ExportOptions, run_export

        opts = ExportOptions(
            out=out,
            precision=value(precision),
            checkpoint=checkpoint,
            target=value(target),
            calib=calib,
            calib_tiles=calib_tiles,
            calib_method=value(calib_method),
            eval_data=eval_data,
            eval_tiles=eval_tiles,
            tile=tile,
            plugin=plugin,
            drift_budget=drift_budget,
            allow_drift=allow_drift,
            with_checkpoint=not without_checkpoint,
            backend=value(backend),
            int8_placement=value(int8_placement),
        )
        with stage_status("export") as stage:
            manifest = run_export(opts, on_stage=stage)
        print_export(out, manifest)


def print_export(out: Path, manifest: dict) -> None:
    d = manifest["drift"]
    verdict = "within budget" if d["within_budget"] else "[bold red]OVER BUDGET[/] (kept: --allow-drift)"
    console.print(
        f"{out}: {manifest['precision']}{' + TDP_PGF plugin' if manifest['plugin']['enabled'] else ''}, "
        f"{manifest['model_bytes'] / 2**20:.2f} MB, tile {manifest['tile']}; on {d['tiles']} held-out tiles, {d['backend']} vs torch FP32: "
        f"dPSNR {d['psnr_delta']:+.3f} dB, dmIoU {miou_text(d['miou_delta'])}, max |err| {d['max_abs_error']:.2e}; {verdict}"
    )
    if manifest["target"]:
        console.print(
            f"target {manifest['target']}: {manifest['precision']} because {manifest['runtime']['precision_chosen_by']}; "
            f"`tdpcr-edge infer --model {out}` runs it on {manifest['runtime']['backend']}",
            highlight=False,
        )
    if manifest["fp16_fallback_layers"]:
        console.print(f"FP16 fallback layers ({len(manifest['fp16_fallback_layers'])}): {', '.join(manifest['fp16_fallback_layers'])}")
