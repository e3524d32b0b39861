"""The tiles an export is measured and calibrated on: synthetic held-out seeds, or windows cut
from the scenes of a data set, and their digest (recorded in the manifest)."""

from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np

from ..data.normalize import Normalization
from ..data.scenes import SceneArrays
from ..data.sources import SyntheticSource
from ..data.specs import open_dataset
from ..errors import DataError
from .calibration import CalibrationTiles

# Held-out synthetic seeds: never used for training (seed 0) nor for the evaluation scenes
# of the README (seed 7), and distinct from each other.
DRIFT_SEED = 9001
CALIB_SEED = 9002


def tiles_from(
    data: str, count: int, tile: int, norm: Normalization, num_classes: int, seed: int, split: str = "test"
) -> list[SceneArrays]:
    """``count`` tiles of ``tile`` pixels: from the synthetic world's ``seed`` or cut from the
    scenes of a data spec (``split`` of a data set; top-left windows, then the next ones,
    scene by scene)."""
    tiles = list(iter_tiles(data, count, tile, norm, num_classes, seed, split))
    if not tiles:
        raise _no_tiles(data, tile)
    return tiles


def iter_tiles(
    data: str, count: int, tile: int, norm: Normalization, num_classes: int, seed: int, split: str = "test"
) -> Iterator[SceneArrays]:
    """The tiles of ``tiles_from``, made one at a time."""
    if data == "synthetic":
        source = SyntheticSource(seed, num_classes, norm)
        yield from (source.scene(i, tile) for i in range(count))
        return
    made = 0
    for s in open_dataset(data, split).scenes(norm):
        h, w = s.valid.shape
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                yield window(s, y, x, tile, f"{s.name}@{y},{x}")
                made += 1
                if made == count:
                    return


def calibration_tiles(
    data: str, count: int, tile: int, norm: Normalization, num_classes: int, seed: int, split: str = "val"
) -> CalibrationTiles:
    """The calibration tiles as the calibrator pulls them: made one at a time, in order, so
    memory does not grow with their number. A data spec is counted first (a pass that keeps
    nothing), the synthetic world has exactly ``count``."""

    def make() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Copies: a window of a data-set scene would keep its whole scene alive.
        return (
            (np.ascontiguousarray(t.optical), np.ascontiguousarray(t.sar))
            for t in iter_tiles(data, count, tile, norm, num_classes, seed, split)
        )

    n = count if data == "synthetic" else sum(1 for _ in iter_tiles(data, count, tile, norm, num_classes, seed, split))
    if not n:
        raise _no_tiles(data, tile)
    return CalibrationTiles(make, n)


def _no_tiles(data: str, tile: int) -> DataError:
    return DataError(f"{data}: no scene is at least {tile}x{tile} pixels; pass larger scenes or a smaller --tile")


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
