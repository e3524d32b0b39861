"""`tdpcr-edge comparison`: every architecture trained at an equal budget, scored, counted and benched."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import console, print_wrote, stage_status
from .options import choices


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def comparison(
        out: Annotated[Path, typer.Option("--out", help="Folder: train/ARCH runs, comparison.json, comparison.md, bench/report.*.")],
        arch: Annotated[Optional[list[c.arch_type]], typer.Option(help="Architectures to compare (repeat); default every one.")] = None,
        config: Annotated[str, typer.Option(help="Size every architecture is trained at: small (minutes on a CPU) or full.")] = "small",
        steps: Annotated[
            int, typer.Option(min=1, help="Reconstruction steps of every architecture (joint ones: as many for segmentation).")
        ] = 300,
        batch: Annotated[int, typer.Option(min=1, help="Training batch.")] = 8,
        seed: Annotated[int, typer.Option(min=0, help="Training seed, the same for every architecture.")] = 0,
        eval_scenes: Annotated[int, typer.Option(min=1, help="Held-out scenes (a seed no run trains on).")] = 16,
        precisions: Annotated[str, typer.Option(help="Precisions benched, comma-separated.")] = "fp32,fp16,int8",
        backends: Annotated[str, typer.Option(help="Backends benched, comma-separated.")] = "ort,openvino",
        tile: Annotated[int, typer.Option(min=16, help="Tile the latency and MACs are measured at.")] = 256,
        iterations: Annotated[int, typer.Option(min=1, help="Timed calls per bench row.")] = 20,
    ) -> None:
        """The paper's comparison at the edge: every architecture at an equal training budget, its accuracy (overall, by cloud
        thickness, mIoU where it segments), parameters and MACs (small and full) and latency at each precision on this machine."""
        from ..comparison import ComparisonOptions, run_comparison

        opts = ComparisonOptions(
            out=out,
            archs=tuple(str(a) for a in arch or ()),
            size=config,
            steps=steps,
            batch=batch,
            seed=seed,
            eval_scenes=eval_scenes,
            precisions=precisions,
            backends=backends,
            tile=tile,
            iterations=iterations,
        )
        with stage_status("comparison") as stage:
            run_comparison(opts, on_stage=stage)
        console.print((out / "comparison.md").read_text(), highlight=False, markup=False)
        print_wrote(out / "comparison.json", out / "comparison.md", out / "bench" / "report.png")
