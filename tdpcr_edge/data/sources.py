"""Where training samples come from: the synthetic world, generated from (seed, index), or a
data set's training split. ``train.samples`` turns either into the run's sample stream."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .normalize import Normalization
from .scenes import SceneArrays
from .synthetic import CLASS_COLORS, CLASS_NAMES, make_scene


class BatchSource(Protocol):
    classes: list[str]
    colors: list[tuple[int, int, int]]
    norm: Normalization


class SyntheticSource:
    """Scenes generated on the fly from ``seed``; ``stream`` 0 trains, 1 validates. The optical
    bands are the normalisation's (a model's bands, by name)."""

    def __init__(self, seed: int = 0, num_classes: int = 6, norm: Normalization = Normalization(), stream: int = 0):
        self.seed, self.num_classes, self.norm, self.stream = seed, num_classes, norm, stream
        self.classes = list(CLASS_NAMES[:num_classes])
        self.colors = list(CLASS_COLORS[:num_classes])

    def sample(self, index: int, size: int) -> dict[str, np.ndarray]:
        s = make_scene(self.seed, index, size, self.num_classes, stream=self.stream, bands=self.norm.optical_bands)
        return {
            "optical": self.norm.optical_to_model(s.optical_cloudy),
            "sar": self.norm.sar_to_model(s.sar),
            "clear": self.norm.optical_to_model(s.optical_clear),
            "labels": s.labels.astype(np.int64),
            "cloud": s.cloud,
            "valid": np.ones(s.labels.shape, bool),
        }

    def scenes(self, count: int, size: int) -> list[SceneArrays]:
        """The first ``count`` scenes as evaluation inputs; with stream 0 they equal what
        ``tdpcr-edge synth --seed SEED`` writes and reads back."""
        return [self.scene(i, size) for i in range(count)]

    def scene(self, index: int, size: int) -> SceneArrays:
        s = self.sample(index, size)
        return SceneArrays(f"scene_{index:04d}", s["optical"], s["sar"], s["valid"], s["clear"], s["labels"], s["cloud"])


class DatasetSource:
    """A data set's training split; its samples are cropped and augmented by
    ``train.samples.SampleStream`` and read lazily, in the DataLoader's workers."""

    def __init__(self, dataset, seed: int = 0):
        self.dataset, self.seed = dataset, seed
        self.classes, self.colors, self.norm = list(dataset.classes), list(dataset.colors), dataset.norm


def open_source(data: str, norm: Normalization = Normalization(), seed: int = 0, num_classes: int = 6) -> BatchSource:
    """``synthetic``, a folder of scenes or a data-set spec (its train split)."""
    if data == "synthetic":
        return SyntheticSource(seed, num_classes, norm)
    from .specs import open_dataset

    return DatasetSource(open_dataset(data, split="train"), seed)
