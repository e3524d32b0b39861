"""`tdpcr-edge check`: can a target's TensorRT take an artifact's graph?"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import console, print_error
from .options import choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def check(
        artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `tdpcr-edge export` (or an .onnx file).")],
        target: Annotated[c.target, typer.Option(help="Deployment profile: can its runtime take this graph?")],
        plugin_lib: Annotated[
            Optional[Path], typer.Option(help="A built libtdpcr_trt_plugin.so: check plugin nodes against its creators.")
        ] = None,
    ) -> None:
        """Can the target's TensorRT take this graph? Operators, types, Q/DQ rules, plugin nodes,
        input shapes; one line per problem naming the node, exit 2 when it cannot."""
        from ..backends.trt.check import check_artifact

        problems, table = check_artifact(artifact, value(target), plugin_lib)
        for p in problems:
            print_error(f"{artifact}: {p.line()}")
        if problems:
            raise typer.Exit(2)
        console.print(
            f"{artifact}: {target} can take this graph (operators checked against the TensorRT ONNX parser's {table} table)"
            if table
            else f"{artifact}: {target} can take this graph",
            highlight=False,
        )
