"""`tdpcr-edge verify`: digests, signature and the golden set, where the model runs."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from .console import console
from .options import DriftBudget, choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def verify(
        path: Annotated[Path, typer.Argument(help="Artifact folder (`tdpcr-edge export`) or engine folder (`tdpcr-edge build-engine`).")],
        backend: Annotated[
            Optional[c.backend],
            typer.Option(help="Backend to run the golden set on (default: an engine's TensorRT, an artifact's own gate backend)."),
        ] = None,
        drift_budget: DriftBudget = None,
        public_key: Annotated[
            Optional[Path], typer.Option(help="PEM public key: refuse an unsigned artifact, or one changed after signing.")
        ] = None,
        json: Annotated[Optional[Path], typer.Option(help="Write the result here (psnr_delta, miou_delta, ...).")] = None,
    ) -> None:
        """Check a model before switching to it: its signature (with --public-key), every file's digest, then the
        golden set on the backend against the stored FP32 outputs. Exit 2: a damaged, missing or unsigned file; 3: over budget."""
        from ..verify import summary_line
        from ..verify import verify as run_verify

        b = value(backend) if backend is not None else None
        r = run_verify(path, backend=None if b == "auto" else b, drift_budget=drift_budget, public_key=public_key, json_out=json)
        console.print(f"{path}: {summary_line(r)}", highlight=False)
