"""`tdpcr-edge doctor`: what this machine has for each step of the pipeline."""

import typer
from rich.markup import escape
from rich.table import Table

from .console import console


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor() -> None:
        """What this machine has: the backends and their libraries, CUDA, GPUs, kernels, profiles."""
        from ..doctor import diagnose

        table = Table(title="tdpcr-edge doctor")
        for col in ("item", "status", "detail"):
            table.add_column(col)
        for row in diagnose():
            style = {"ok": "green", "missing": "yellow"}.get(row.status)
            table.add_row(row.item, f"[{style}]{row.status}[/]" if style else row.status, escape(row.detail))
        console.print(table)
