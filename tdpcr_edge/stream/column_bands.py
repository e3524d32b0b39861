"""Column bands: a wide scene streamed as bands of tile columns, one after the other, each
band top to bottom, so the reader's decoded rows, the blender's strip and the finished strips
in flight span a band's width instead of the scene's, and a stream's memory does not grow
with the scene's width (docs/streaming.md#a-full-sentinel-2-tile).

Bands meet where a tile owns its pixels (``tiles.spans``): band b finishes the scene columns
[x0, x1), x1 being the end of its last tile's owned columns. The next band's columns from x1
on are still reached by that tile (the overlap its neighbour shares); its values there, an
"edge piece" per tile row, are kept in the run's ``.partial`` folder (a few hundred kB a row,
on disk so that a resumed run finds them) and blended into the next band just before that
band's first tile of the same row: the order a row-major pass adds them in, so the float sums,
and the outputs, are the same bit for bit as with one band."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io_utils import atomic_path
from .tiles import TileGrid, feather, spans

BAND_WIDTH = 2048  # columns per band at most, about (StreamOptions.band_width)


@dataclass(frozen=True)
class Band:
    index: int
    cols: range  # the tile columns (indices into grid.xs) this band infers
    x0: int  # the scene columns it finishes: [x0, x1)
    x1: int
    read: tuple[int, int]  # the scene columns its tiles read: [read[0], read[1])
    last: bool  # the scene's last band: no edge pieces to keep


def column_bands(grid: TileGrid, width: int | None = None) -> list[Band]:
    """As few bands as keep each within about ``width`` (BAND_WIDTH) columns, cut near equal
    widths. A band may end after tile column c when that tile owns columns (no other tile's
    weight reaches them), at the end of those; at an even column where the tiling has such
    ends (level 1 of the overviews is then made per band, in 2x2 groups). One band when the
    scene is narrow or no column qualifies."""
    width = width or BAND_WIDTH
    xs = grid.xs
    n = len(xs)
    count = -(-grid.width // width)
    s = spans(xs, grid.width, grid.tile, grid.overlap)
    # Candidate cuts: after tile c (not the last), at the end of its owned columns.
    cuts = {c: xs[c] + s.owned[c][1] for c in range(n - 1) if s.owned[c][1] > s.owned[c][0]}
    cuts = {c: x for c, x in cuts.items() if x % 2 == 0} or cuts
    chosen: list[int] = []
    for k in range(1, count):
        target = grid.width * k / count
        best = min((c for c in cuts if not chosen or c > chosen[-1]), key=lambda c: abs(cuts[c] - target), default=None)
        if best is not None:
            chosen.append(best)
    bands, first, x0 = [], 0, 0
    for i, c in enumerate([*chosen, n - 1]):
        x1 = cuts[c] if c in chosen else grid.width
        read = (xs[first], min(xs[c] + grid.tile, grid.width))
        bands.append(Band(i, range(first, c + 1), x0, x1, read, c == n - 1))
        first, x0 = c + 1, x1
    return bands


class EdgePieces:
    """The last tile column of each band, its values over the next band's columns, per tile
    row: written as the band goes, read back when the next band reaches that row."""

    def __init__(self, folder: Path):
        self.folder = folder / "edges"

    def path(self, band: int, row: int) -> Path:
        return self.folder / f"{band}-{row}.npz"

    def save(self, band: int, row: int, start: int, outputs: dict, valid) -> None:
        """The tile's columns from ``start`` on (the next band's first column); ``outputs`` per
        model output, None where the tile has none."""
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {name: v[..., start:] for name, v in outputs.items() if v is not None}
        with atomic_path(self.path(band, row)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays, valid=valid[..., start:])

    def load(self, band: int, row: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The outputs the piece holds (an output it lacks is absent) and its valid pixels."""
        with np.load(self.path(band, row)) as z:
            return {name: z[name] for name in z.files if name != "valid"}, z["valid"]


def blend_tile(blender, band: Band, grid: TileGrid, edges: EdgePieces, t, outputs: dict, valid) -> None:
    """Tile ``t`` into its band's strip: the band before's edge piece of the same row first when
    ``t`` is the band's first tile (where a row-major pass would have added that tile), then
    ``t``; its own edge piece kept when it is the band's last tile and a band follows."""
    if band.index and t.col == band.cols.start:
        prev = grid.row(t.row)[t.col - 1]
        blender.add(
            prev.window,
            feather(grid.tile, grid.tile, grid.overlap, prev.taper),
            *edges.load(band.index - 1, t.row),
            start=band.x0 - int(prev.window.col_off),
        )
    blender.add(t.window, feather(grid.tile, grid.tile, grid.overlap, t.taper), outputs, valid)
    if not band.last and t.col == band.cols.stop - 1:
        edges.save(band.index, t.row, band.x1 - int(t.window.col_off), outputs, valid)
