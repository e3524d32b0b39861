"""Training batches. A source maps a step number to a batch deterministically, so a
resumed run sees exactly the data an uninterrupted one would have seen."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..errors import DataError
from .normalize import Normalization
from .scenes import SceneArrays, find_scenes, read_legend, read_scene
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


class SceneFolderSource:
    """Random crops from scene folders written by ``tdpcr-edge synth`` (or laid out alike).
    The folders are read once and kept in memory: fine for fixture-sized sets; the real
    data-set readers stream instead."""

    def __init__(self, root: str | Path, norm: Normalization = Normalization(), seed: int = 0):
        self.root, self.seed = Path(root), seed
        self.scenes: list[SceneArrays] = [read_scene(p, norm, need=("clear", "labels")) for p in find_scenes(root)]
        legend = read_legend(root)
        n = int(max(int(s.labels[s.labels != 255].max(initial=0)) for s in self.scenes)) + 1
        self.classes, self.colors = legend if legend else ([f"class {i}" for i in range(n)], [tuple(int(v) for v in np.random.default_rng(i).integers(0, 256, 3)) for i in range(n)])

    def batch(self, step: int, batch_size: int, patch: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, step]))
        items = []
        for _ in range(batch_size):
            s = self.scenes[rng.integers(len(self.scenes))]
            h, w = s.labels.shape
            if h < patch or w < patch:
                raise DataError(f"{self.root / s.name}: scene is {w}x{h}, smaller than the training patch {patch}; pass a smaller --patch")
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
    """``synthetic`` or a folder of scenes."""
    if data == "synthetic":
        return SyntheticSource(seed, num_classes, norm)
    return SceneFolderSource(data, norm, seed)
