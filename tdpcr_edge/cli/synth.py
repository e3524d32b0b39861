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
        bands: Annotated[
            str, typer.Option(help="Optical bands: s2-l1c (13), s2-l2a (12), s2-rgbn (B02,B03,B04,B08) or a list.")
        ] = "s2-l1c",
        layout: Annotated[
            str,
            typer.Option(
                help="stack (one 10 m GeoTIFF), safe (a SAFE product: JP2 per band at 10/20/60 m, baseline 05.10 offset, VV and VH files) "
                "or stac (band COGs and item.json)."
            ),
        ] = "stack",
    ) -> None:
        """Write synthetic georeferenced scenes (cloudy and clear optical, SAR, labels, cloud)."""
        from ..data.bands import parse_bands, preset_name
        from ..data.synth_folders import write_synthetic

        names = parse_bands(bands)
        with progress_bar("synth", scenes) as advance:
            written = write_synthetic(out, scenes, size, seed, classes, on_scene=advance, bands=names, layout=layout)
        console.print(f"wrote {len(written)} scenes of {size}x{size} px ({preset_name(names)}, {layout} layout) to {out}")
