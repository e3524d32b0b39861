"""`tdpcr-edge build-engine`: a TensorRT engine from an artifact, on the device."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..drift import miou_text
from .console import console, stage_status
from .options import DriftBudget, choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command("build-engine")
    def build_engine_cmd(
        artifact: Annotated[Path, typer.Argument(help="Artifact folder written by `tdpcr-edge export`.")],
        out: Annotated[Path, typer.Option("--out", help="Engine folder: model.engine and engine.json.")],
        target: Annotated[Optional[c.target], typer.Option(help="Deployment profile (max batch and workspace defaults).")] = None,
        plugin_lib: Annotated[Optional[Path], typer.Option(help="libtdpcr_trt_plugin.so, for graphs with TDP_PGF nodes.")] = None,
        timing_cache: Annotated[Optional[Path], typer.Option(help="Timing cache to reuse and update.")] = None,
        workspace: Annotated[Optional[int], typer.Option(min=1, help="Builder workspace in MiB.")] = None,
        max_batch: Annotated[Optional[int], typer.Option(min=1, help="Largest batch of the optimisation profile.")] = None,
        drift_budget: DriftBudget = None,
        public_key: Annotated[
            Optional[Path], typer.Option(help="PEM public key: build only from an artifact signed with its private key.")
        ] = None,
    ) -> None:
        """Build a TensorRT engine from an artifact, on the device that will run it, and gate it: the engine runs the
        artifact's golden set against FP32 before it is written (over budget: exit 3, nothing written)."""
        from ..backends.trt.engine import build_engine

        # build_engine checks the artifact, its graph and the options before TensorRT is needed.
        with stage_status("building the TensorRT engine (minutes on a Jetson)"):
            record = build_engine(
                artifact,
                out,
                target=value(target),
                plugin_lib=plugin_lib,
                timing_cache=timing_cache,
                workspace_mb=workspace,
                max_batch=max_batch,
                drift_budget=drift_budget,
                public_key=public_key,
            )
        d = record["drift"]
        console.print(
            f"wrote {out}/model.engine: TensorRT {record['tensorrt']}, {record['gpu']['name']} (SM {record['gpu']['sm']}), "
            f"{record['precision']}; golden set dPSNR {d['psnr_delta']:+.3f} dB, dmIoU {miou_text(d['miou_delta'])} vs FP32, within budget"
        )
        console.print(f"equivalent trtexec command:\n  {record['trtexec']}", highlight=False)
