"""Calibration settings and the calibration-tile reader ONNX Runtime's calibrator pulls from.
The ``percentile`` method keeps the 99.99th percentile of each activation's magnitude."""

from __future__ import annotations

import hashlib

import numpy as np

from ..errors import ConfigError

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.99


def check_calibration_method(method: str) -> str:
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}: choose one of {', '.join(CALIBRATION_METHODS)}")
    return method


# Tiles per calibration group. ONNX Runtime's calibrator keeps every intermediate tensor of
# every tile it has run until the group ends, then folds them into its histograms (or
# min/max) and drops them, so one call over every tile peaks in proportion to the tiles
# (docs/export.md#calibration-in-bounded-memory). Groups bound the peak by the group,
# whatever the number of tiles.
CALIB_GROUP = 1


def calibration_group(tiles: int, group: int = CALIB_GROUP) -> int:
    """The group size ONNX Runtime is given: the largest divisor of ``tiles`` up to ``group``
    (its strided calibration wants groups of one size)."""
    return max(g for g in range(1, max(1, min(group, tiles)) + 1) if tiles % g == 0)


class CalibrationTiles:
    """Calibration tiles for ONNX Runtime's calibrator, made one at a time by ``make`` (a
    function returning a fresh iterator of (optical, sar) tiles) and never all held; the
    digest of the tiles (as ``tiles_digest`` computes it) is taken as they pass in order."""

    def __init__(self, make, count: int):
        self.make, self.count = make, count
        self.rewind()

    def __len__(self) -> int:
        return self.count

    def rewind(self) -> None:
        self._it, self._pos, self._end = self.make(), 0, self.count
        self._hash, self._hashed = hashlib.sha256(), 0

    def set_range(self, start_index: int, end_index: int) -> None:
        if start_index < self._pos:
            self.rewind()
        while self._pos < start_index:
            self._pull()
        self._end = end_index

    def _pull(self):
        item = next(self._it, None)
        if item is None:
            return None
        if self._hashed == self._pos:  # the digest follows the first pass in order
            self._hash.update(item[0].tobytes())
            self._hash.update(item[1].tobytes())
            self._hashed += 1
        self._pos += 1
        return item

    def get_next(self):
        if self._pos >= self._end:
            return None
        item = self._pull()
        return None if item is None else {"optical": item[0][None], "sar": item[1][None]}

    def digest(self) -> str:
        """The tiles' digest; one more pass over them if the calibrator did not take each
        once, in order."""
        if self._hashed < self.count:
            self.rewind()
            while self._pull() is not None:
                pass
        return self._hash.hexdigest()


class TileReader:
    """Calibration tiles for ONNX Runtime's calibrator, one tile per step; ``set_range``
    narrows it to one group (the calibrator's strided collection calls it)."""

    def __init__(self, tiles: list[tuple[np.ndarray, np.ndarray]]):
        self.tiles = tiles
        self.rewind()

    def rewind(self) -> None:
        self._it = iter(self.tiles)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.tiles[start_index:end_index])

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else {"optical": item[0][None], "sar": item[1][None]}

    def __len__(self) -> int:
        return len(self.tiles)
