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
        artifacts: Annotated[
            list[Path], typer.Argument(help="Artifact folders written by `tdpcr-edge export` (or .onnx files): one model each.")
        ],
        target: Annotated[c.target, typer.Option(help="Deployment profile: can its runtime take this graph?")],
        plugin_lib: Annotated[
            Optional[Path], typer.Option(help="A built libtdpcr_trt_plugin.so: check plugin nodes against its creators.")
        ] = None,
    ) -> None:
        """Can the target's TensorRT take each model's graph? Operators, types, Q/DQ rules, plugin
        nodes, input shapes; one line per problem naming the node, a verdict per model, exit 2 when
        any cannot."""
        from ..backends.trt.check import check_artifact

        refused = 0
        for artifact in artifacts:
            problems, table = check_artifact(artifact, value(target), plugin_lib)
            name = f"{artifact}{_model_of(artifact)}"
            for p in problems:
                print_error(f"{name}: {p.line()}")
            refused += bool(problems)
            if not problems:
                how = f" (operators checked against the TensorRT ONNX parser's {table} table)" if table else ""
                console.print(f"{name}: {target} can take this graph{how}", highlight=False)
        if refused:
            raise typer.Exit(2)


def _model_of(artifact: Path) -> str:
    """ " (ARCH SIZE)" of an artifact folder, "" for a bare graph."""
    from ..contract import read_manifest

    if not (Path(artifact) / "manifest.json").exists():
        return ""
    m = read_manifest(artifact)["model"]
    return f" ({m.get('arch', 'tdpcr')} {m['name']})"
