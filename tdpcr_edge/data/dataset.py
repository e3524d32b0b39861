"""A data set: its samples' files, classes, colours and normalisation, pixels read on demand.
Each reader (``datasets``, ``sen12mscr``) builds one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, DataError
from .normalize import Normalization
from .scenes import IGNORE_INDEX, SceneArrays, read_layers

SPLITS = ("train", "val", "test", "all")


@dataclass
class Sample:
    """One sample's files; ``read`` turns them into model-space arrays."""

    name: str
    paths: dict[str, Path]
    # A subset the data set is scored by as well as overall (LuojiaSET-OSFCR's cloud-cover folder).
    group: str | None = None


@dataclass
class Dataset:
    """A list of samples with their classes and normalisation; pixels read on demand."""

    description: str
    samples: list[Sample]
    classes: list[str]
    colors: list[tuple[int, int, int]]
    norm: Normalization = field(default_factory=Normalization)
    labels: Callable[[np.ndarray, Path], np.ndarray] | None = None
    bands: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # "ids": label rasters hold class ids (255 = ignore); "igbp": SEN12MS codes that
    # ``labels`` maps, so a consumer reading the raster itself cannot use them.
    label_codes: str = "ids"
    # What the reader decided about the data (split rule, radiometry); eval.json records it.
    meta: dict = field(default_factory=dict)
    # DN taken off the optical and clear images before normalisation (the processing baseline
    # 04.00 offset, where a data set kept it).
    optical_offset: float = 0.0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> SceneArrays:
        return self.read(i)

    def read(self, i: int, norm: Normalization | None = None) -> SceneArrays:
        """Sample ``i`` in model space; ``norm`` (a checkpoint's) overrides the data set's,
        so a model is fed exactly what it was trained on."""
        s = self.samples[i]
        return read_layers(s.name, s.paths, norm or self.norm, self.labels, self.bands, self.optical_offset)

    def scenes(self, norm: Normalization | None = None):
        return (self.read(i, norm) for i in range(len(self)))


def _class_check(num_classes: int) -> Callable[[np.ndarray, Path], np.ndarray]:
    def check(raw: np.ndarray, path: Path) -> np.ndarray:
        bad = (raw >= num_classes) & (raw != IGNORE_INDEX) | (raw < 0)
        if bad.any():
            raise DataError(
                f"{path}: label value {int(raw[bad].flat[0])} is outside the {num_classes} classes (0..{num_classes - 1}, 255 = ignore); "
                "fix the labels or num_classes in the layout"
            )
        return raw

    return check


def _check_keys(spec: str, options: dict, allowed: tuple[str, ...]) -> None:
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ConfigError(f"{spec}: unknown option {', '.join(bad)}; this data set takes {', '.join(allowed)}")


def _split(spec: str, options: dict, default: str) -> str:
    split = options.get("split", default)
    if split not in SPLITS:
        raise ConfigError(f"{spec}: unknown split {split!r}; choose {', '.join(SPLITS)}")
    return split


def _numbered(n: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    rng = np.random.default_rng(0)
    return [f"class {i}" for i in range(n)], [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


# --- SEN12MS-CR -------------------------------------------------------------------------
