"""What one bench row is made of, for the full bench and the torch-free one alike: its calls
(a runner cycling through the tiles) and its identity, size and accuracy from a drift."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..backends.runner import Runner
from ..data.scenes import SceneArrays
from ..export import nncf_peer
from .matrix import Combo


def tile_calls(runner: Runner, tiles: list[SceneArrays]) -> Callable[[int], object]:
    """The i-th call of a row: ``runner`` on tile i (cycling), batch 1."""

    def call(i: int):
        t = tiles[i % len(tiles)]
        return runner(t.optical[None], t.sar[None])

    return call


def accuracy_fields(combo: Combo, drift: dict, checkpoint: Path, artifact: Path | None, engine: Path | None) -> dict:
    """A report row's identity, size and accuracy, from a ``measure_drift`` result."""
    model_files = [engine / "model.engine"] if engine else nncf_peer.model_files(artifact) if artifact else [Path(checkpoint)]
    cand = drift["candidate"]
    row = {
        "backend": combo.backend,
        "precision": combo.precision,
        "variant": combo.variant,
        "device": combo.device,
        "model_mb": sum(f.stat().st_size for f in model_files) / 2**20,
        "psnr": cand["psnr"],
        "ssim": cand["ssim"],
        "sam": cand["sam"],
        "miou": cand.get("miou"),  # None for a model without segmentation
        "psnr_delta": drift["psnr_delta"],
        "miou_delta": drift["miou_delta"],
        "max_abs_error": drift["max_abs_error"],
        "class_agreement": drift["class_agreement"],
    }
    if artifact is not None:
        from ..contract import read_manifest

        manifest = read_manifest(artifact)
        gate = manifest["drift"]
        row["export_gate"] = {"backend": gate.get("backend", "ort"), "within_budget": gate["within_budget"]}
        row["graph_sha256"] = manifest.get("onnx_sha256")  # identical graphs on one backend are tied
    return row
