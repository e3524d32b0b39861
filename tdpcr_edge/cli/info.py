"""`tdpcr-edge info`: parameters and multiply-accumulates per module."""

from typing import Annotated

import typer
from rich.table import Table

from .console import console
from .options import choices


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def info(
        config: c.Config = "tiny",
        fusion: c.Fusion = "pgf",
        tile: Annotated[
            int, typer.Option(min=8, help="Tile size (pixels) the MACs are counted at; a multiple of the model's stride.")
        ] = 256,
    ) -> None:
        """Parameters and multiply-accumulates per module."""
        from ..model import build_model
        from ..model.profile import module_costs

        table = Table(title=f"TDP-CR {config} ({fusion}), one {tile}x{tile} tile")
        for col in ("module", "params", "MACs (G)"):
            table.add_column(col, justify="left" if col == "module" else "right")
        for row in module_costs(build_model(str(config), fusion=str(fusion)), tile):
            table.add_row(row.name, f"{row.params:,}", f"{row.macs / 1e9:.3f}", style="bold" if row.name == "total" else None)
        console.print(table)
