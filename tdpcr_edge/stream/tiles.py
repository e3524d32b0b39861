"""Tiling a scene: a row-major grid of overlapping windows and the feathered weights that
blend them without seams.

Windows are rasterio ``Window`` objects. A tile's weight tapers only on the sides where a
neighbouring tile overlaps it (never at the scene border, where nothing else covers those
pixels): zero on the outer quarter of the overlap, where zero padding of the convolutions
disturbs the prediction most, then a linear ramp to one across the next half.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rasterio.windows import Window

from ..errors import ConfigError


def starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis: every ``stride``, the last one flush with the end."""
    if size <= tile:
        return [0]
    out = list(range(0, size - tile, stride))
    out.append(size - tile)
    return out


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 8:
        raise ConfigError(f"--tile {tile} is too small (at least 8)")
    if not 0 <= overlap < tile // 2:
        raise ConfigError(f"--overlap {overlap} must be at least 0 and under half the tile ({tile // 2})")


@dataclass(frozen=True)
class Tile:
    row: int
    col: int
    window: Window  # clipped to the scene
    taper: tuple[bool, bool, bool, bool]  # neighbours above, below, left, right


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    tile: int
    overlap: int

    def __post_init__(self):
        check_tiling(self.tile, self.overlap)

    @property
    def ys(self) -> list[int]:
        return starts(self.height, self.tile, self.tile - self.overlap)

    @property
    def xs(self) -> list[int]:
        return starts(self.width, self.tile, self.tile - self.overlap)

    def row(self, r: int) -> list[Tile]:
        ys, xs = self.ys, self.xs
        y = ys[r]
        h = min(self.tile, self.height - y)
        tiles = []
        for c, x in enumerate(xs):
            w = min(self.tile, self.width - x)
            taper = (r > 0, r < len(ys) - 1, c > 0, c < len(xs) - 1)
            tiles.append(Tile(r, c, Window(x, y, w, h), taper))
        return tiles

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def final_rows(self, r: int) -> int:
        """After tile row ``r`` is blended, rows above this index are final: no later tile
        row reaches them."""
        ys = self.ys
        return ys[r + 1] if r + 1 < len(ys) else self.height

    def first_row_touching(self, y: int) -> int:
        """The first tile row that covers scene row ``y`` or below."""
        for r, top in enumerate(self.ys):
            if top + min(self.tile, self.height - top) > y:
                return r
        return len(self.ys)


def _ramp(n: int, overlap: int, lo: bool, hi: bool) -> np.ndarray:
    w = np.ones(n, np.float32)
    if overlap <= 0:
        return w
    dead = overlap // 4
    span = max(1, overlap - 2 * dead)
    d = np.arange(n, dtype=np.float32)
    ramp = np.clip((d - dead + 0.5) / span, 0.0, 1.0)
    if lo:
        w = np.minimum(w, ramp)
    if hi:
        w = np.minimum(w, ramp[::-1])
    return w


@lru_cache(maxsize=64)
def feather(h: int, w: int, overlap: int, taper: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Blending weight of one tile, H x W, float32 in [0, 1]."""
    wy = _ramp(h, overlap, taper[0], taper[1])
    wx = _ramp(w, overlap, taper[2], taper[3])
    return np.outer(wy, wx)


@dataclass(frozen=True)
class Spans:
    """Along one axis of a tile grid: per tile, where its weight is not zero (``nonzero``)
    and where it alone covers the scene with weight exactly 1 (``owned``), both as offsets
    into the tile; ``owned_mask`` marks the owned scene positions. A pixel owned along both
    axes (by tile row i and tile column j) takes tile (i, j)'s value as it is: every other
    tile's weight there is 0, so the weighted mean is that value, bit for bit."""

    nonzero: tuple[tuple[int, int], ...]
    owned: tuple[tuple[int, int], ...]
    owned_mask: np.ndarray


def spans(origins: list[int], size: int, tile: int, overlap: int) -> Spans:
    ramps = [_ramp(tile, overlap, i > 0, i < len(origins) - 1)[: min(tile, size - o)] for i, o in enumerate(origins)]
    covering = np.zeros(size, np.int32)
    for o, r in zip(origins, ramps):
        covering[o : o + r.size] += r > 0
    mask = np.zeros(size, bool)
    nonzero, owned = [], []
    for o, r in zip(origins, ramps):
        nz = np.flatnonzero(r > 0)
        nonzero.append((int(nz[0]), int(nz[-1]) + 1))
        mine = np.flatnonzero((r == 1.0) & (covering[o : o + r.size] == 1))
        # One interval per tile (the ramps make it one); anything else is blended instead.
        if mine.size and mine[-1] - mine[0] + 1 == mine.size:
            owned.append((int(mine[0]), int(mine[-1]) + 1))
            mask[o + mine[0] : o + mine[-1] + 1] = True
        else:
            owned.append((0, 0))
    return Spans(tuple(nonzero), tuple(owned), mask)
