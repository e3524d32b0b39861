"""Calibration settings and the calibration-tile reader ONNX Runtime's calibrator pulls from.
The ``percentile`` method keeps the 99.99th percentile of each activation's magnitude."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
PERCENTILE = 99.99


def check_calibration_method(method: str) -> str:
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r}: choose one of {', '.join(CALIBRATION_METHODS)}")
    return method


class TileReader:
    """Calibration tiles for ONNX Runtime's calibrator, one tile per step."""

    def __init__(self, tiles: list[tuple[np.ndarray, np.ndarray]]):
        self.tiles = tiles
        self.rewind()

    def rewind(self) -> None:
        self._it = iter(self.tiles)

    def get_next(self):
        item = next(self._it, None)
        return None if item is None else {"optical": item[0][None], "sar": item[1][None]}

    def __len__(self) -> int:
        return len(self.tiles)
