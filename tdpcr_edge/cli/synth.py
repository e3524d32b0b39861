"""`tdpcr-edge synth`: synthetic georeferenced scenes."""

from pathlib import Path
from typing import Annotated

import typer

from .console import console, progress_bar


def register(app: typer.Typer) -> None:
    @app.command()
    def synth(
        out: Annotated[Path, typer.Argument(help="Output folder; one sub-folder per scene.")],
        scenes: Annotated[int, typer.Option(min=1, help="Number of scenes.")] = 8,
        size: Annotated[int, typer.Option(min=16, help="Scene width and height in pixels.")] = 256,
        seed: Annotated[int, typer.Option(min=0, help="World seed; scene i is the same for the same seed and size.")] = 0,
        classes: Annotated[int, typer.Option(min=2, max=6, help="Number of land-cover classes (2..6).")] = 6,
    ) -> None:
        """Write synthetic georeferenced scenes (cloudy and clear optical, SAR, labels, cloud)."""
        from ..data.scenes import write_synthetic

        with progress_bar("synth", scenes) as advance:
            written = write_synthetic(out, scenes, size, seed, classes, on_scene=advance)
        console.print(f"wrote {len(written)} scenes of {size}x{size} px to {out}")
