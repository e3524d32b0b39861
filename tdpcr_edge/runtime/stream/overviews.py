"""Overviews of the reconstruction made while the stream runs, strip by strip, instead of
in one pass over the whole scratch raster after the last tile.

GDAL builds each overview level from the level above it (2x average). Where the level
above has an even number of rows, a window of whole row pairs averaged by GDAL itself
(a decimated read with average resampling: the same kernel, the same nodata rule) gives the
same pixels as the whole level does, so those levels are made as rows become final. They
are written as GDAL's external overview files (``X.gtiff.ovr`` holds level 1,
``X.gtiff.ovr.ovr`` level 2, ...), which GDAL opens as the scratch raster's overviews and
the COG driver reuses; the levels below the first odd one are built by GDAL at the end, on
the last streamed level (a sixteenth of the scene or less). The COG is byte-identical to the
one made from overviews built after the stream (tested).

Only the reconstruction is done this way: it is 13 bands against one each for the class and
confidence maps, whose overviews GDAL builds at the end in a few hundredths of a second."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

COG_BLOCK = 512
HALF_ROWS = 16  # level-1 rows made at a time from a strip in memory
OVERVIEW_RESAMPLING = {"reconstruction": Resampling.average, "classes": Resampling.mode, "confidence": Resampling.average}


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Decimation factors of the overviews GDAL's COG driver makes by default: halve until
    the level fits one block."""
    factors, f = [], 1
    while max(-(-width // f), -(-height // f)) > block:
        f *= 2
        factors.append(f)
    return factors


def streamed_levels(height: int, factors: list[int]) -> int:
    """How many leading overview levels can be made strip by strip: as long as the level
    they are made from has an even number of rows (an exact 2x in rows)."""
    levels, h = 0, height
    for _ in factors:
        if h % 2:
            break
        levels += 1
        h = -(-h // 2)
    return levels


class StripOverviews:
    """Levels 1..n of one scratch raster, kept up to date with its finished rows."""

    def __init__(self, base: Path, spec: dict, factors: list[int], resampling: Resampling, lock: threading.Lock, cuts: tuple[int, ...] = ()):
        self.base, self.spec, self.resampling, self.lock = base, spec, resampling, lock
        self.factors = factors
        self.levels = streamed_levels(spec["height"], factors)
        nodata = spec.get("nodata")
        # Level 1 from the rows in memory (``half``) where that is GDAL's own average: an even
        # width and unsigned 16-bit integers (the check in tests/runtime/test_blend.py compares them).
        self.in_memory = self.levels > 0 and spec["width"] % 2 == 0 and np.dtype(spec["dtype"]) == np.uint16 and resampling == Resampling.average
        # Column bands (meeting at ``cuts``) finish a band's rows, not the scene's: level 1 is made
        # band by band from memory where the bands meet at even columns, the levels below it (or
        # every level) by GDAL at the end.
        self.banded = bool(cuts)
        if cuts:
            self.levels = 1 if self.in_memory and all(x % 2 == 0 for x in cuts) else 0
            self.in_memory = self.in_memory and self.levels == 1
        self.band_cols: tuple[int, int] | None = None
        # Made under names of their own, renamed to GDAL's overview names once complete: while
        # ``X.gtiff.ovr`` exists, GDAL answers a decimated read of X from it (the very level
        # being made) instead of averaging X's own pixels.
        self.paths = [base.with_name(f"{base.name}.level{k + 1}") for k in range(self.levels)]
        self.final = [Path(f"{base}{'.ovr' * (k + 1)}") for k in range(self.levels)]
        self.sizes = [(spec["height"], spec["width"])]
        for _ in range(self.levels):
            h, w = self.sizes[-1]
            self.sizes.append((-(-h // 2), -(-w // 2)))
        self.done = [0] * self.levels
        self.carry: tuple[int, np.ndarray] | None = None  # (row, pixels): a full-resolution row whose pair is still to come
        self.nodata = None if nodata is None or np.isnan(nodata) else int(nodata)

    def create(self) -> None:
        """Empty level files (again, on resume: ``update`` then recomputes every level from
        the rows the scratch raster holds)."""
        self.done = [0] * self.levels
        for final in self.final:
            final.unlink(missing_ok=True)  # left by a run killed after its last level was renamed
        for k, path in enumerate(self.paths):
            h, w = self.sizes[k + 1]
            spec = {key: v for key, v in self.spec.items() if key not in ("descriptions", "colormap", "tags", "tiled", "blockxsize", "blockysize")}
            tiled = dict(tiled=True, blockxsize=256, blockysize=256) if h >= 256 and w >= 256 else {}
            transform = self.spec["transform"] * self.spec["transform"].scale(2 ** (k + 1))
            with rasterio.open(path, "w", **{**spec, "height": h, "width": w, "transform": transform, **tiled}):
                pass

    def resume(self, bands: list, band: int, flushed: int) -> None:
        """A resumed run's levels, remade from the rows the scratch raster holds: every row of
        the bands before ``band`` (``bands.Band``), ``flushed`` rows of that one."""
        if not self.banded:
            self.update(flushed)
            return
        for b in bands[:band]:
            self.update(self.spec["height"], cols=(b.x0, b.x1))
        self.update(flushed, cols=(bands[band].x0, bands[band].x1))

    def update(self, flushed: int, rows: np.ndarray | None = None, y0: int | None = None, cols: tuple[int, int] | None = None) -> None:
        """Make every level row whose source rows are all final (``flushed`` rows of the
        scratch raster are). ``rows``: the scratch raster's rows [y0, flushed), just written;
        level 1 is then made from them in memory instead of read back from the file (the
        decimated read of the file cost 2.5x the CPU, see ``half``). ``cols``: the column band
        they belong to, when the scene is streamed in bands."""
        if self.banded:
            self._update_band(flushed, rows, y0, cols)
            return
        available = flushed
        for k in range(self.levels):
            (sh, sw), (h, w) = self.sizes[k], self.sizes[k + 1]
            upto = h if available >= sh else available // 2
            if k == 0 and upto > self.done[0] and (block := self._block(rows, y0)) is not None:
                self._half(block, 0)
            elif upto > self.done[k]:
                y0 = self.done[k]
                src_path = self.base if k == 0 else self.paths[k - 1]
                with self.lock if k == 0 else contextlib.nullcontext(), rasterio.open(src_path) as src:
                    rows = src.read(window=Window(0, 2 * y0, sw, min(2 * upto, sh) - 2 * y0), out_shape=(src.count, upto - y0, w), resampling=self.resampling)
                with rasterio.open(self.paths[k], "r+") as dst:
                    dst.write(rows, window=Window(0, y0, w, upto - y0))
                self.done[k] = upto
            available = self.done[k]

    def _update_band(self, flushed: int, rows, y0, cols: tuple[int, int]) -> None:
        if cols != self.band_cols:
            self.band_cols, self.carry = cols, None
            self.done = [0] * self.levels
        if not self.levels:
            return
        block = self._block(rows, y0)
        if block is not None:
            self._half(block, cols[0])
            return
        while flushed - 2 * self.done[0] >= 2:  # rows not in memory (resume): read back from the scratch raster
            y = 2 * self.done[0]
            with self.lock, rasterio.open(self.base) as src:
                block = src.read(window=Window(cols[0], y, cols[1] - cols[0], min(flushed, y + 256) - y))
            self._half(block, cols[0])

    def _half(self, block: np.ndarray, x0: int) -> None:
        """Level 1 of full-resolution rows from 2 * done[0] on (columns from ``x0``, even),
        an odd last row carried to the next strip."""
        pairs, w = block.shape[1] // 2, block.shape[2] // 2
        level = np.empty((block.shape[0], pairs, w), block.dtype)
        for r in range(0, pairs, HALF_ROWS):  # in pieces: the uint32 sums of a whole strip are 4x its size
            level[:, r : r + HALF_ROWS] = half(block[:, 2 * r : 2 * min(r + HALF_ROWS, pairs)], self.nodata)
        with rasterio.open(self.paths[0], "r+") as dst:
            dst.write(level, window=Window(x0 // 2, self.done[0], w, pairs))
        self.carry = (2 * (self.done[0] + pairs), block[:, 2 * pairs :]) if block.shape[1] % 2 else None
        self.done[0] += pairs

    def _block(self, rows, y0) -> np.ndarray | None:
        """Rows from level 1's next source row on, or None when they are not in memory (a
        resumed run's rows, a width GDAL does not average in pairs)."""
        if rows is None or not self.in_memory:
            return None
        start = 2 * self.done[0]
        if y0 == start:
            return rows
        if self.carry is not None and self.carry[0] == start and y0 == start + 1:
            return np.concatenate([self.carry[1], rows], axis=1)
        return None

    def finish(self) -> None:
        """The levels that could not be streamed, built by GDAL on the last streamed level
        (or on the scratch raster itself when none could)."""
        rest = self.factors[self.levels:]
        if rest:
            target = self.paths[-1] if self.paths else self.base
            scale = 2 ** self.levels
            with rasterio.open(target, "r+") as dst:
                dst.build_overviews([f // scale for f in rest], self.resampling)
        for path, final in zip(self.paths, self.final):
            path.replace(final)


def half(block: np.ndarray, nodata: int | None) -> np.ndarray:
    """GDAL's 2x average of bands x rows x columns (even sizes, integers): the mean of each 2x2
    group's valid pixels rounded half up, nodata where none is valid. Row pairs are added
    first, whole rows at a time: 6.6 ms for a 13 x 224 x 2048 strip against 16 ms for four
    strided quarter sums and 17 ms for GDAL's decimated read (AMD EPYC, AVX2)."""
    invalid = None if nodata is None else block == nodata
    if invalid is not None and not invalid.any():
        invalid = None
    if invalid is not None and nodata:
        block = np.where(invalid, 0, block)
    rows = np.add(block[:, 0::2], block[:, 1::2], dtype=np.uint32)
    total = np.add(rows[..., 0::2], rows[..., 1::2])
    if invalid is None:
        total += 2
        total >>= 2
        return total.astype(block.dtype)
    valid_rows = np.add(~invalid[:, 0::2], ~invalid[:, 1::2], dtype=np.uint8)
    count = np.add(valid_rows[..., 0::2], valid_rows[..., 1::2])
    total += count // 2
    out = np.where(count > 0, total // np.maximum(count, 1), nodata)
    return out.astype(block.dtype)
