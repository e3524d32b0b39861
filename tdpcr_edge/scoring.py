"""Scoring the model: one loop over anything that runs it, one accumulator.

``score`` runs each scene through a runner (a backend's ``Runner``, or ``model_outputs`` of a
torch model in training) and adds it to an ``Evaluation``: the reconstruction against the
clear image, the cloudy input itself as the baseline, and segmentation, overall and by
cloud-thickness bin. ``tdpcr-edge eval``, training's validation, the ablation and export's
drift gate score through it; the scene stream adds the strips of the rasters it wrote to the
same accumulator (``stream.scene_metrics``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from .data.scenes import SceneArrays
from .data.synthetic import THICKNESS_BINS
from .metrics import ReconstructionScores, SegmentationScores

# What runs the model: optical (N x C x H x W) and SAR (N x 2 x H x W) in, the model's outputs
# (contract.OUTPUTS, numpy, batch first) out. Every backend's Runner is one.
RunModel = Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass
class Prediction:
    scene: SceneArrays
    reconstruction: np.ndarray  # C x H x W in [0, 1]
    classes: np.ndarray | None  # H x W uint8; None for a model without segmentation
    reliance: np.ndarray | None  # H x W in [0, 1]


def prediction(scene: SceneArrays, out: dict[str, np.ndarray]) -> Prediction:
    rel, seg = out.get("reliance"), out.get("segmentation")
    return Prediction(
        scene=scene,
        reconstruction=out["reconstruction"][0],
        classes=seg[0].argmax(0).astype(np.uint8) if seg is not None else None,
        reliance=rel[0, 0] if rel is not None else None,
    )


@dataclass
class Evaluation:
    num_classes: int
    bins: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(THICKNESS_BINS))
    inputs: bool = True  # score the cloudy input too (the baseline every report prints)
    scenes: int = 0

    def __post_init__(self):
        self.model_scores = ReconstructionScores(self.bins)
        self.input_scores = ReconstructionScores(self.bins)
        self.seg = SegmentationScores(self.num_classes, self.bins)

    def add(
        self,
        reconstruction: np.ndarray | None,
        classes: np.ndarray | None,
        *,
        valid: np.ndarray,
        optical: np.ndarray | None = None,
        clear: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        cloud: np.ndarray | None = None,
        seg_valid: np.ndarray | None = None,
    ) -> None:
        """One image (or strip): reconstruction and optical C x H x W, classes, labels, cloud
        and valid H x W. Reconstruction is scored where ``clear`` is given, segmentation where
        ``labels`` are; ``seg_valid`` narrows the pixels segmentation is scored on."""
        # The accumulators take batches: each array gets a batch axis of one.
        cloud_b = cloud[None] if cloud is not None else None
        if clear is not None:
            target = clear[None]
            self.model_scores.update(reconstruction[None], target, cloud_b, valid[None])
            if self.inputs and optical is not None:
                self.input_scores.update(optical[None], target, cloud_b, valid[None])
        if labels is not None and classes is not None:
            self.seg.update(classes[None], labels[None], cloud_b, (valid if seg_valid is None else seg_valid)[None])

    def update(self, p: Prediction) -> None:
        s = p.scene
        self.scenes += 1
        self.add(p.reconstruction, p.classes, valid=s.valid, optical=s.optical, clear=s.clear, labels=s.labels, cloud=s.cloud)

    def merge(self, other: "Evaluation") -> None:
        """Add another evaluation's scenes (one rank's shard of a validation set)."""
        self.scenes += other.scenes
        self.model_scores.merge(other.model_scores)
        self.input_scores.merge(other.input_scores)
        self.seg.merge(other.seg)

    def summary(self) -> dict[str, float]:
        """The model's scores over every image: reconstruction and segmentation."""
        return {**self.model_scores.compute(), **{k: v for k, v in self.seg.compute().items() if k != "pixels"}}

    def result(self) -> dict:
        bins = {}
        model_bins, input_bins, seg_bins = self.model_scores.compute_bins(), self.input_scores.compute_bins(), self.seg.compute_bins()
        for name in self.bins:
            if name in model_bins or name in seg_bins:
                m = {**model_bins.get(name, {}), **{k: v for k, v in seg_bins.get(name, {}).items() if k != "pixels"}}
                bins[name] = {"model": m, "input": input_bins.get(name, {})}
        return {
            "model": self.summary(),
            "input": self.input_scores.compute(),
            "bins": bins,
            "per_class_iou": self.seg.per_class_iou(),
            "scenes": self.scenes,
        }


@dataclass
class Scored:
    evaluation: Evaluation
    kept: list[Prediction]  # the first ``keep`` predictions (for quick looks)
    outputs: list[dict[str, np.ndarray]]  # every scene's raw outputs, when asked for


def score(
    run: RunModel,
    scenes: Iterable[SceneArrays],
    num_classes: int,
    *,
    keep: int = 0,
    keep_outputs: bool = False,
    inputs: bool = True,
    on_scene: Callable[[], None] | None = None,
) -> Scored:
    """Run every scene through ``run`` and score it. Evaluations of disjoint scene sets merge
    (``Evaluation.merge``) into the evaluation of their union."""
    done = Scored(Evaluation(num_classes, inputs=inputs), [], [])
    for scene in scenes:
        out = run(scene.optical[None], scene.sar[None])
        p = prediction(scene, out)
        done.evaluation.update(p)
        if len(done.kept) < keep:
            done.kept.append(p)
        if keep_outputs:
            done.outputs.append(out)
        if on_scene:
            on_scene()
    return done


def model_outputs(model) -> RunModel:
    """A torch network as a ``RunModel``: inference mode, on the device its weights sit on (a
    model in training may be on a GPU), outputs back as float32 numpy."""
    import torch  # a torch model is scored only where torch is installed

    model.eval()
    device = next(model.parameters()).device

    @torch.no_grad()
    def run(optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        out = model.predict(torch.from_numpy(optical).to(device), torch.from_numpy(sar).to(device))
        return {k: v.float().cpu().numpy() for k, v in out.items() if v is not None}

    return run


def evaluate_scenes(model, scenes: Iterable[SceneArrays], keep: int = 0, on_scene: Callable[[], None] | None = None):
    """Score a torch model on ``scenes``: the result dict and the first ``keep`` predictions."""
    done = score(model_outputs(model), scenes, model.config.num_classes, keep=keep, on_scene=on_scene)
    return done.evaluation.result(), done.kept
