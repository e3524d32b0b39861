"""`tdpcr-edge info`: parameters and multiply-accumulates per module."""

from typing import Annotated, Optional

import typer
from rich.table import Table

from .console import console
from .options import choices


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def info(
        arch: c.Arch = "tdpcr",
        config: Annotated[
            Optional[c.config_type], typer.Option(help="Size: tiny or base (TDP-CR), small or full; default its first.")
        ] = None,
        fusion: c.Fusion = "pgf",
        tile: Annotated[
            int, typer.Option(min=8, help="Tile size (pixels) the MACs are counted at; a multiple of the model's stride.")
        ] = 256,
    ) -> None:
        """Parameters and multiply-accumulates per module, of any registered architecture."""
        from ..model import build_model, get_arch
        from ..model.profile import module_costs

        row = get_arch(str(arch))
        size = str(config) if config else next(iter(row.configs))
        overrides = {"fusion": str(fusion)} if str(fusion) != "pgf" else {}
        model = build_model(size, str(arch), **overrides)
        what = f"{row.summary}\n{arch} {size}" + (f" ({fusion})" if overrides else "") + f", one {tile}x{tile} tile"
        table = Table(title=what)
        for col in ("module", "params", "MACs (G)"):
            table.add_column(col, justify="left" if col == "module" else "right")
        for cost in module_costs(model, tile):
            table.add_row(cost.name, f"{cost.params:,}", f"{cost.macs / 1e9:.3f}", style="bold" if cost.name == "total" else None)
        console.print(table)
