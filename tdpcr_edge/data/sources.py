"""Training batches. A source maps a step number to a batch deterministically, so a
resumed run sees exactly the data an uninterrupted one would have seen."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..errors import DataError
from .normalize import Normalization
from .scenes import SceneArrays
from .synthetic import CLASS_COLORS, CLASS_NAMES, make_scene


class BatchSource(Protocol):
    classes: list[str]
    colors: list[tuple[int, int, int]]

    def batch(self, step: int, batch_size: int, patch: int) -> dict[str, torch.Tensor]: ...


def _stack(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]}


class SyntheticSource:
    """Scenes generated on the fly from ``seed``; ``stream`` 0 trains, 1 validates."""

    def __init__(self, seed: int = 0, num_classes: int = 6, norm: Normalization = Normalization(), stream: int = 0):
        self.seed, self.num_classes, self.norm, self.stream = seed, num_classes, norm, stream
        self.classes = list(CLASS_NAMES[:num_classes])
        self.colors = list(CLASS_COLORS[:num_classes])

    def sample(self, index: int, size: int) -> dict[str, np.ndarray]:
        s = make_scene(self.seed, index, size, self.num_classes, stream=self.stream)
        return {
            "optical": self.norm.optical_to_model(s.optical_cloudy),
            "sar": self.norm.sar_to_model(s.sar),
            "clear": self.norm.optical_to_model(s.optical_clear),
            "labels": s.labels.astype(np.int64),
            "cloud": s.cloud,
            "valid": np.ones(s.labels.shape, bool),
        }

    def batch(self, step: int, batch_size: int, patch: int) -> dict[str, torch.Tensor]:
        return _stack([self.sample(step * batch_size + i, patch) for i in range(batch_size)])

    def scenes(self, count: int, size: int) -> list[SceneArrays]:
        """The first ``count`` scenes as evaluation inputs; with stream 0 they equal what
        ``tdpcr-edge synth --seed SEED`` writes and reads back."""
        out = []
        for i in range(count):
            s = self.sample(i, size)
            out.append(SceneArrays(f"scene_{i:04d}", s["optical"], s["sar"], s["valid"], s["clear"], s["labels"], s["cloud"]))
        return out


class DatasetSource:
    """Random crops from a data set (scene folders, SEN12MS-CR, LuojiaSET-OSFCR, pairs). Samples
    are read lazily; the most recent ones stay cached, so fixture-sized sets are read once."""

    def __init__(self, dataset, seed: int = 0, cache: int = 32):
        from functools import lru_cache

        self.dataset, self.seed = dataset, seed
        self.classes, self.colors, self.norm = list(dataset.classes), list(dataset.colors), dataset.norm
        self._read = lru_cache(maxsize=cache)(dataset.read)

    def batch(self, step: int, batch_size: int, patch: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step]))
        items = []
        for _ in range(batch_size):
            i = int(rng.integers(len(self.dataset)))
            s = self._read(i)
            if s.clear is None or s.labels is None:
                missing = "clear target" if s.clear is None else "labels"
                raise DataError(f"{self.dataset.samples[i].paths['optical']}: sample {s.name} has no {missing}; training needs both (SEN12MS-CR: add ?labels=dfc)")
            h, w = s.labels.shape
            if h < patch or w < patch:
                raise DataError(f"{self.dataset.samples[i].paths['optical']}: scene is {w}x{h}, smaller than the training patch {patch}; pass a smaller --patch")
            y, x = rng.integers(0, h - patch + 1), rng.integers(0, w - patch + 1)
            win = (slice(y, y + patch), slice(x, x + patch))
            cloud = s.cloud if s.cloud is not None else np.zeros_like(s.labels, np.float32)
            items.append(
                {
                    "optical": s.optical[(slice(None), *win)],
                    "sar": s.sar[(slice(None), *win)],
                    "clear": s.clear[(slice(None), *win)],
                    "labels": np.where(s.valid, s.labels, 255)[win],
                    "cloud": cloud[win],
                    "valid": s.valid[win],
                }
            )
        return _stack(items)


def open_source(data: str, norm: Normalization = Normalization(), seed: int = 0, num_classes: int = 6) -> BatchSource:
    """``synthetic``, a folder of scenes or a data-set spec (its train split)."""
    if data == "synthetic":
        return SyntheticSource(seed, num_classes, norm)
    from .datasets import open_dataset

    return DatasetSource(open_dataset(data, split="train"), seed)
