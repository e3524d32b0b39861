"""`tdpcr-edge eval`: a checkpoint scored on a data set's test split (``scoring``), with the
JSON and a quick look."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .scoring import evaluate_scenes  # noqa: F401  (tdpcr_edge.evaluate_scenes is found here)


def run_eval(
    data: str | Path,
    checkpoint: str | Path | None = None,
    json_out: str | Path | None = None,
    quicklook: str | Path | None = None,
    on_scene: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict:
    """Evaluate a checkpoint (the shipped one by default) on scenes (a folder or a data-set
    spec, see ``data.specs``); write the JSON and an optional quick-look PNG of the first
    scenes. Samples with a group (LuojiaSET-OSFCR's cloud-cover folders) are also scored per
    group, under ``groups``; each scene runs once, the groups merging into the overall."""
    from .contract import file_sha256
    from .data.specs import open_dataset
    from .io_utils import write_json
    from .model.registry import get_arch
    from .report.quicklook import save_quicklook
    from .scoring import Evaluation, model_outputs, score
    from .train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    dataset = open_dataset(str(data), split="test")  # a data set's test split
    if on_start:
        on_start(len(dataset))
    num_classes = ckpt.config.num_classes
    notes = []
    # More classes than the model has cannot be scored (an id would land outside the confusion
    # matrix): reconstruction is still scored, segmentation is left out with a warning.
    segments = get_arch(ckpt.config.arch).segments
    unscorable = len(dataset.classes) > num_classes and any("labels" in s.paths for s in dataset.samples)
    if unscorable and segments:
        notes.append(
            f"{data} has {len(dataset.classes)} land-cover classes, the checkpoint {num_classes}: segmentation is not scored; "
            "evaluate a checkpoint trained on this data set"
        )

    def scenes(indices):
        for i in indices:
            scene = dataset.read(i, ckpt.normalization)
            if unscorable:
                scene.labels = None
            yield scene

    by_group: dict[str | None, list[int]] = {}
    for i, s in enumerate(dataset.samples):
        by_group.setdefault(s.group, []).append(i)
    run, keep = model_outputs(model), 4 if quicklook else 0
    overall, kept, groups = Evaluation(num_classes), [], {}
    for group, indices in by_group.items():
        done = score(run, scenes(indices), num_classes, keep=keep - len(kept), on_scene=on_scene)
        overall.merge(done.evaluation)
        kept += done.kept
        if group is not None:
            groups[group] = done.evaluation.result()
    result = overall.result()
    if groups:
        result["groups"] = groups
    result["checkpoint"] = {
        "path": str(ckpt.path),
        "sha256": file_sha256(ckpt.path),
        "config": ckpt.config.name,
        "fusion": ckpt.config.fusion,
        "arch": ckpt.config.arch,
    }
    result["data"] = str(data)
    result["dataset"] = {"description": dataset.description, **dataset.meta}
    result["classes"] = ckpt.classes
    from .contract import SHIPPED_ON_REAL_DATA, is_shipped
    from .data.scenes import is_synthetic_raster

    synthetic = str(data) == "synthetic" or all(is_synthetic_raster(s.paths["optical"]) for s in dataset.samples[:3])
    result["warnings"] = ([SHIPPED_ON_REAL_DATA] if is_shipped(result["checkpoint"]["sha256"]) and not synthetic else []) + notes
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
                "truth": p.scene.labels if p.classes is not None else None,  # nothing to compare it with otherwise
            }
            for p in kept
        ]
        save_quicklook(quicklook, rows, ckpt.classes, ckpt.colors, ckpt.normalization.optical_bands)
    return result
