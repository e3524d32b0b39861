"""`tdpcr-edge eval`: a checkpoint scored by cloud bin, and per group (LuojiaSET-OSFCR's
cloud-cover folders) where the data set has groups."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .console import console, fmt, print_warnings, print_wrote, progress_bar
from .options import Checkpoint


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        data: Annotated[
            str, typer.Option(help="Scene folder written by `synth`, sen12mscr:ROOT, luojia:ROOT or pairs:CSV (test split by default).")
        ],
        checkpoint: Checkpoint = None,
        json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics here.")] = None,
        quicklook: Annotated[Optional[Path], typer.Option(help="Write a quick-look PNG of the first scenes here.")] = None,
    ) -> None:
        """Score reconstruction (PSNR, SSIM, SAM, MAE) and segmentation (mIoU, OA), by cloud bin (and by cloud-cover folder on
        LuojiaSET-OSFCR)."""
        from ..data.specs import item_unit
        from ..evaluate import run_eval

        with progress_bar("eval", None) as advance:
            result = run_eval(data, checkpoint, json_out, quicklook, on_scene=advance, on_start=lambda n: advance(0, total=n))
        print_eval(result, f"{result['scenes']} {item_unit(data)} in {data}, checkpoint {Path(result['checkpoint']['path']).name}")
        print_wrote(json_out, quicklook)
        print_warnings(result)


def print_eval(result: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("pixels", "input PSNR", "model PSNR", "gain dB", "SSIM in/out", "SAM in/out", "mIoU %", "OA %"):
        table.add_column(col, justify="right")
    rows = [("all", result["model"], result["input"])] + [(k, v["model"], v["input"]) for k, v in result["bins"].items()]
    for name, m, i in rows:
        gain = m.get("psnr", 0) - i.get("psnr", 0) if "psnr" in m and "psnr" in i else None
        table.add_row(
            name,
            fmt(i.get("psnr")),
            fmt(m.get("psnr")),
            fmt(gain),
            f"{fmt(i.get('ssim'), 3)} / {fmt(m.get('ssim'), 3)}",
            f"{fmt(i.get('sam'), 1)} / {fmt(m.get('sam'), 1)}",
            fmt(m.get("miou"), 1),
            fmt(m.get("oa"), 1),
        )
    console.print(table)
    for name, g in result.get("groups", {}).items():
        m, i = g["model"], g["input"]
        console.print(
            f"{name}: {g['scenes']} sample{'s' * (g['scenes'] != 1)}, PSNR {fmt(i.get('psnr'))} -> {fmt(m.get('psnr'))} dB, "
            f"SSIM {fmt(i.get('ssim'), 3)} -> {fmt(m.get('ssim'), 3)}, mIoU {fmt(m.get('miou'), 1)} %",
            highlight=False,
            markup=False,
        )
