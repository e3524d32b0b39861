"""Scoring a model on scenes: the reconstruction against the clear image, the cloudy
input itself as the baseline, and segmentation, overall and by cloud-thickness bin. Training's
validation and ``tdpcr-edge eval`` (``evaluate.run_eval``) both score this way."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def accumulate_scenes(
    model: TDPCR, scenes: Iterable[SceneArrays], keep: int = 0, on_scene: Callable[[], None] | None = None
) -> tuple[Evaluation, list[Prediction]]:
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
