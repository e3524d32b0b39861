"""`tdpcr-edge compare`: the drift of several artifacts side by side."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..drift import miou_text
from .console import console, stage_status
from .options import choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def compare(
        artifacts: Annotated[list[Path], typer.Argument(help="Artifact folders written by `tdpcr-edge export`.")],
        data: Annotated[str, typer.Option(help="'synthetic' (held-out seed) or a scene folder.")] = "synthetic",
        tiles: Annotated[int, typer.Option(min=1, help="Tiles to measure on (16 synthetic held-out tiles: the export gate's own).")] = 16,
        backend: Annotated[c.compare_backend, typer.Option(help="auto: the backend each artifact's gate used.")] = "auto",
    ) -> None:
        """The drift table of several artifacts side by side."""
        from ..export import compare_artifacts

        with stage_status("compare"):
            rows = compare_artifacts(artifacts, data, tiles, value(backend))
        print_compare(rows)


def print_compare(rows: list[dict]) -> None:
    golden = any(r["reference"] == "golden" for r in rows)
    title = "drift against torch FP32, same held-out tiles"
    table = Table(title=title + ("; golden: against the FP32 outputs stored in the artifact, on its golden tiles" if golden else ""))
    for col in (
        "artifact",
        "precision",
        "backend",
        "plugin",
        "MB",
        "PSNR dB",
        "dPSNR dB",
        "dSSIM",
        "dSAM deg",
        "mIoU %",
        "dmIoU pt",
        "max |err|",
        "class agree %",
        "reference",
        "budget",
    ):
        table.add_column(col, justify="left" if col in ("artifact", "precision", "backend") else "right")
    for r in rows:
        table.add_row(
            Path(r["artifact"]).name,
            r["precision"],
            r["backend"],
            "yes" if r["plugin"] else "no",
            f"{r['model_mb']:.2f}",
            f"{r['psnr']:.2f}",
            f"{r['psnr_delta']:+.3f}",
            f"{r['ssim_delta']:+.4f}",
            f"{r['sam_delta']:+.3f}",
            "-" if r["miou"] is None else f"{r['miou']:.1f}",
            miou_text(r["miou_delta"], ""),
            f"{r['max_abs_error']:.2e}",
            "-" if r["class_agreement"] is None else f"{r['class_agreement']:.2f}",
            r["reference"],
            "ok" if not r["over_budget"] else "OVER: " + "; ".join(r["over_budget"]),
        )
    console.print(table)
