"""The tiles an export is measured and calibrated on: synthetic held-out seeds, or windows cut
from the scenes of a data set, and their digest (recorded in the manifest)."""

from __future__ import annotations

import hashlib

from ..data.datasets import open_dataset
from ..data.normalize import Normalization
from ..data.scenes import SceneArrays
from ..data.sources import SyntheticSource
from ..errors import DataError

# Held-out synthetic seeds: never used for training (seed 0) nor for the evaluation scenes
# of the README (seed 7), and distinct from each other.
DRIFT_SEED = 9001
CALIB_SEED = 9002


def tiles_from(data: str, count: int, tile: int, norm: Normalization, num_classes: int, seed: int, split: str = "test") -> list[SceneArrays]:
    """``count`` tiles of ``tile`` pixels: from the synthetic world's ``seed`` or cut from the
    scenes of a data spec (``split`` of a data set; top-left windows, then the next ones,
    scene by scene)."""
    if data == "synthetic":
        return SyntheticSource(seed, num_classes, norm).scenes(count, tile)
    tiles = []
    for s in open_dataset(data, split).scenes(norm):
        h, w = s.valid.shape
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                tiles.append(window(s, y, x, tile, f"{s.name}@{y},{x}"))
                if len(tiles) == count:
                    return tiles
    if not tiles:
        raise DataError(f"{data}: no scene is at least {tile}x{tile} pixels; pass larger scenes or a smaller --tile")
    return tiles


def window(scene: SceneArrays, y: int, x: int, size: int, name: str) -> SceneArrays:
    """The ``size`` x ``size`` window of ``scene`` at (``y``, ``x``), every layer alike."""
    win = (slice(y, y + size), slice(x, x + size))
    cut = lambda a: None if a is None else a[(..., *win)]  # noqa: E731
    return SceneArrays(name, cut(scene.optical), cut(scene.sar), cut(scene.valid), cut(scene.clear), cut(scene.labels), cut(scene.cloud))


def crop(scene: SceneArrays, size: int, multiple: int = 1) -> SceneArrays:
    """The top-left ``size`` x ``size`` window of a tile (at least one model multiple)."""
    size = max(multiple, size - size % multiple)
    return window(scene, 0, 0, size, f"{scene.name}[:{size}]")


def tiles_digest(tiles: list[SceneArrays]) -> str:
    h = hashlib.sha256()
    for t in tiles:
        h.update(t.optical.tobytes())
        h.update(t.sar.tobytes())
    return h.hexdigest()
