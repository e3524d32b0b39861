"""`tdpcr-edge compare`: several artifacts measured on the same tiles, side by side."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .. import golden
from ..contract import read_manifest
from ..data.normalize import Normalization
from ..drift import measure_drift, over_budget
from .heldout import DRIFT_SEED, tiles_from


def compare_artifacts(artifacts: list[str | Path], data: str = "synthetic", tiles: int = 16, backend: str = "auto") -> list[dict]:
    """One row per artifact: its drift against torch FP32 of its own checkpoint, on
    ``tiles`` tiles of ``data`` at the artifact's tile size, run on ``backend`` (``auto``:
    the backend the artifact's export gate measured, so the defaults repeat the gate).
    Without torch, or for an artifact without its checkpoint, the reference is the golden
    set's stored FP32 outputs, on the golden tiles (``reference`` says which)."""
    from ..backends.factory import load_runner, resolve_backend

    torch_here = importlib.util.find_spec("torch") is not None

    rows = []
    references: dict[tuple, tuple] = {}
    for art in map(Path, artifacts):
        manifest = read_manifest(art)
        norm = Normalization.from_dict(manifest["normalization"])
        model = manifest["model"]
        tile = manifest["tile"]
        key = (manifest["checkpoint"]["sha256"], tile)
        used = resolve_backend(art, backend)
        runner = load_runner(art, backend=used)
        if torch_here and (art / "checkpoint.pt").is_file():
            from ..backends.torch_runner import TorchRunner

            kind, scenes = "torch", tiles_from(data, tiles, tile, norm, model["num_classes"], DRIFT_SEED)
            drift, references[key] = measure_drift(
                TorchRunner(art / "checkpoint.pt"), runner, scenes, model["num_classes"], references.get(key)
            )
        else:
            g = golden.read(art)
            kind, scenes = "golden", g.tiles
            drift = golden.measure(g, runner, model["num_classes"])
        budget = manifest["drift"].get("budget", {})
        rows.append(
            {
                "artifact": str(art),
                "precision": manifest["precision"],
                "backend": used,
                "plugin": manifest["plugin"]["enabled"],
                "model_mb": manifest["model_bytes"] / 2**20,
                "psnr": drift["candidate"]["psnr"],
                "miou": drift["candidate"].get("miou"),  # None for a model without segmentation
                **{
                    k: drift[k]
                    for k in ("psnr_delta", "ssim_delta", "sam_delta", "miou_delta", "max_abs_error", "mean_abs_error", "class_agreement")
                },
                "fp16_fallback_layers": len(manifest.get("fp16_fallback_layers") or []),
                "over_budget": over_budget(drift, budget),
                "tiles": len(scenes),
                "reference": kind,
            }
        )
    return rows
