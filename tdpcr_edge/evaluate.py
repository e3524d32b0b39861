"""`tdpcr-edge eval`: a checkpoint scored on a data set's test split (``scoring``), with the
JSON and a quick look."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .scoring import evaluate_scenes


def run_eval(
    data: str | Path,
    checkpoint: str | Path | None = None,
    json_out: str | Path | None = None,
    quicklook: str | Path | None = None,
    on_scene: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict:
    """Evaluate a checkpoint (the shipped one by default) on scenes (a folder or a data-set
    spec, see ``data.specs``); write the
    JSON and an optional quick-look PNG of the first scenes."""
    from .contract import file_sha256
    from .io_utils import write_json
    from .report.quicklook import save_quicklook
    from .train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    from .data.specs import open_dataset

    dataset = open_dataset(str(data), split="test")  # a data set's test split
    if on_start:
        on_start(len(dataset))
    scenes = dataset.scenes(ckpt.normalization)
    result, kept = evaluate_scenes(model, scenes, keep=4 if quicklook else 0, on_scene=on_scene)
    result["checkpoint"] = {
        "path": str(ckpt.path),
        "sha256": file_sha256(ckpt.path),
        "config": ckpt.config.name,
        "fusion": ckpt.config.fusion,
    }
    result["data"] = str(data)
    result["classes"] = ckpt.classes
    from .contract import SHIPPED_ON_REAL_DATA, is_shipped
    from .data.scenes import is_synthetic_raster

    synthetic = str(data) == "synthetic" or all(is_synthetic_raster(s.paths["optical"]) for s in dataset.samples[:3])
    result["warnings"] = [SHIPPED_ON_REAL_DATA] if is_shipped(result["checkpoint"]["sha256"]) and not synthetic else []
    if json_out:
        write_json(json_out, result)
    if quicklook and kept:
        rows = [
            {
                "title": p.scene.name,
                "cloudy": p.scene.optical,
                "sar": p.scene.sar,
                "reconstruction": p.reconstruction,
                "classes": p.classes,
                "truth": p.scene.labels,
            }
            for p in kept
        ]
        save_quicklook(quicklook, rows, ckpt.classes, ckpt.colors, ckpt.normalization.optical_bands)
    return result
