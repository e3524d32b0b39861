"""Scoring a model on scenes: the reconstruction against the clear image, the cloudy
input itself as the baseline, and segmentation, overall and by cloud-thickness bin."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .data.scenes import SceneArrays
from .metrics import ReconstructionScores, SegmentationScores
from .model import TDPCR


@dataclass
class Prediction:
    scene: SceneArrays
    reconstruction: np.ndarray  # C x H x W in [0, 1]
    classes: np.ndarray  # H x W uint8
    reliance: np.ndarray | None  # H x W in [0, 1]


@dataclass
class Evaluation:
    num_classes: int
    model_scores: ReconstructionScores = field(default_factory=ReconstructionScores)
    input_scores: ReconstructionScores = field(default_factory=ReconstructionScores)
    seg: SegmentationScores | None = None
    scenes: int = 0

    def __post_init__(self):
        self.seg = SegmentationScores(self.num_classes)

    def update(self, p: Prediction) -> None:
        s = p.scene
        self.scenes += 1
        valid = torch.from_numpy(s.valid)[None]
        cloud = torch.from_numpy(s.cloud)[None] if s.cloud is not None else None
        if s.clear is not None:
            target = torch.from_numpy(s.clear)[None]
            self.model_scores.update(torch.from_numpy(p.reconstruction)[None], target, cloud, valid)
            self.input_scores.update(torch.from_numpy(s.optical)[None], target, cloud, valid)
        if s.labels is not None:
            self.seg.update(torch.from_numpy(p.classes.astype(np.int64))[None], torch.from_numpy(s.labels)[None], cloud, valid)

    def merge(self, other: "Evaluation") -> None:
        """Add another evaluation's scenes (one rank's shard of a validation set)."""
        self.scenes += other.scenes
        self.model_scores.merge(other.model_scores)
        self.input_scores.merge(other.input_scores)
        self.seg.merge(other.seg)

    def result(self) -> dict:
        model = {**self.model_scores.compute(), **{k: v for k, v in self.seg.compute().items() if k != "pixels"}}
        bins = {}
        model_bins, input_bins, seg_bins = self.model_scores.compute_bins(), self.input_scores.compute_bins(), self.seg.compute_bins()
        for name in self.model_scores.bins:
            if name in model_bins or name in seg_bins:
                m = {**model_bins.get(name, {}), **{k: v for k, v in seg_bins.get(name, {}).items() if k != "pixels"}}
                bins[name] = {"model": m, "input": input_bins.get(name, {})}
        return {
            "model": model,
            "input": self.input_scores.compute(),
            "bins": bins,
            "per_class_iou": self.seg.per_class_iou(),
            "scenes": self.scenes,
        }


@torch.no_grad()
def predict_scene(model: TDPCR, scene: SceneArrays) -> Prediction:
    device = next(model.parameters()).device  # a model in training may sit on a GPU
    out = model.predict(torch.from_numpy(scene.optical)[None].to(device), torch.from_numpy(scene.sar)[None].to(device))
    rel = out.get("reliance")
    return Prediction(
        scene=scene,
        reconstruction=out["reconstruction"][0].float().cpu().numpy(),
        classes=out["segmentation"][0].argmax(0).cpu().numpy().astype(np.uint8),
        reliance=rel[0, 0].float().cpu().numpy() if rel is not None else None,
    )


def evaluate_scenes(
    model: TDPCR,
    scenes: Iterable[SceneArrays],
    keep: int = 0,
    on_scene: Callable[[], None] | None = None,
) -> tuple[dict, list[Prediction]]:
    """Score ``model`` on ``scenes``; return the result dict and the first ``keep`` predictions
    (for quick looks)."""
    ev, kept = accumulate_scenes(model, scenes, keep, on_scene)
    return ev.result(), kept


def accumulate_scenes(model: TDPCR, scenes: Iterable[SceneArrays], keep: int = 0,
                      on_scene: Callable[[], None] | None = None) -> tuple[Evaluation, list[Prediction]]:
    """``evaluate_scenes`` before the scores are computed: evaluations of disjoint scene
    sets merge (``Evaluation.merge``) into the evaluation of their union."""
    model.eval()
    ev = Evaluation(model.config.num_classes)
    kept = []
    for scene in scenes:
        p = predict_scene(model, scene)
        ev.update(p)
        if len(kept) < keep:
            kept.append(p)
        if on_scene:
            on_scene()
    return ev, kept


def run_eval(
    data: str | Path,
    checkpoint: str | Path | None = None,
    json_out: str | Path | None = None,
    quicklook: str | Path | None = None,
    on_scene: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict:
    """Evaluate a checkpoint (the shipped one by default) on scenes (a folder or a data-set
    spec, see ``data.datasets``); write the
    JSON and an optional quick-look PNG of the first scenes."""
    from .io_utils import write_json
    from .report.quicklook import save_quicklook
    from .train.checkpoint import file_sha256, load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    from .data.datasets import open_dataset

    dataset = open_dataset(str(data), split="test")  # a data set's test split
    if on_start:
        on_start(len(dataset))
    scenes = dataset.scenes(ckpt.normalization)
    result, kept = evaluate_scenes(model, scenes, keep=4 if quicklook else 0, on_scene=on_scene)
    result["checkpoint"] = {"path": str(ckpt.path), "sha256": file_sha256(ckpt.path), "config": ckpt.config.name, "fusion": ckpt.config.fusion}
    result["data"] = str(data)
    result["classes"] = ckpt.classes
    from .data.scenes import is_synthetic_raster
    from .train.checkpoint import SHIPPED_ON_REAL_DATA, is_shipped

    synthetic = str(data) == "synthetic" or all(is_synthetic_raster(s.paths["optical"]) for s in dataset.samples[:3])
    result["warnings"] = [SHIPPED_ON_REAL_DATA] if is_shipped(result["checkpoint"]["sha256"]) and not synthetic else []
    if json_out:
        write_json(json_out, result)
    if quicklook and kept:
        rows = [
            {"title": p.scene.name, "cloudy": p.scene.optical, "sar": p.scene.sar, "reconstruction": p.reconstruction, "classes": p.classes, "truth": p.scene.labels}
            for p in kept
        ]
        save_quicklook(quicklook, rows, ckpt.classes, ckpt.colors)
    return result
