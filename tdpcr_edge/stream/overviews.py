"""Overviews of the outputs made while the stream runs, strip by strip, instead of in one
pass over each whole scratch raster after the last tile.

GDAL builds each overview level from the level above it (2x average, or mode for the class
map). Where the level above has an even number of rows, a window of whole row pairs gives
the same pixels as the whole level does, resampled by GDAL itself (a decimated read: the
same kernel, the same nodata rule) or by ``half``, ``half_float`` and ``mode_2x2`` (GDAL's
kernels in numpy, from rows still in memory), so those levels are made as rows become final. They
are written as GDAL's external overview files (``X.gtiff.ovr`` holds level 1,
``X.gtiff.ovr.ovr`` level 2, ...), which GDAL opens as the scratch raster's overviews and
the COG driver reuses; the levels below the first odd one are built by GDAL at the end, on
the last streamed level (a sixteenth of the scene or less). The COG is byte-identical to the
one made from overviews built after the stream (tested).

Every output's levels are streamed, the small one-band maps' too (classes, confidence): overviews
built at the end go through rasterio's ``build_overviews``, which holds the GIL, so on a large
scene they run one after another and hold back every COG copy until they are done; made
strip by strip, they share the stream's cores instead. Levels are made from rows still in
memory (level 1 from the strip just written, each next level from the one just made) wherever
numpy computes GDAL's own kernel (``half``, ``half_float``, ``mode_2x2``): that costs less CPU
than GDAL's decimated read of the file. The figures: docs/streaming.md#the-pipelines-own-cost."""

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
READ_ROWS = 128  # level rows made at a time from rows read back


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Decimation factors of the overviews GDAL's COG driver makes by default: halve until
    the level fits one block."""
    factors, f = [], 1
    while max(-(-width // f), -(-height // f)) > block:
        f *= 2
        factors.append(f)
    return factors


def streamed_levels(
    height: int, factors: list[int], width: int | None = None, cuts: tuple[int, ...] = (), even_widths: bool = False
) -> int:
    """How many leading overview levels can be made strip by strip: as long as the level
    they are made from has an even number of rows (an exact 2x in rows). Made band by band
    (column bands meeting at ``cuts``) or by ``half_float``, also an even number of columns
    and every cut on a pixel of the level below (an exact 2x in columns)."""
    levels, h, w = 0, height, width
    for _ in factors:
        if h % 2 or ((cuts or even_widths) and (w % 2 or any(x % 2 ** (levels + 1) for x in cuts))):
            break
        levels += 1
        h, w = -(-h // 2), w and -(-w // 2)
    return levels


class StripOverviews:
    """Levels 1..n of one scratch raster, kept up to date with its finished rows: the rows of
    one column band at a time where the scene is streamed in bands (meeting at ``cuts``)."""

    def __init__(
        self, base: Path, spec: dict, factors: list[int], resampling: Resampling, lock: threading.Lock, cuts: tuple[int, ...] = ()
    ):
        self.base, self.spec, self.resampling, self.lock = base, spec, resampling, lock
        self.factors = factors
        # GDAL's decimated read averages floats in another order than its overviews (the last
        # bit differs), so a float raster's levels are made by ``half_float``, GDAL's overview
        # kernel at 2x, from rows in memory or read back: at even sizes only.
        self.floats = np.dtype(spec["dtype"]).kind == "f"
        self.levels = streamed_levels(spec["height"], factors, spec["width"], tuple(cuts), even_widths=self.floats)
        nodata = spec.get("nodata")
        # Level 1 from the rows in memory where ``half``, ``half_float`` or ``mode_2x2`` is GDAL's
        # own kernel: an even width; averages of unsigned 16-bit integers or floats, the mode of
        # bytes (tests/stream/test_blend.py compares them).
        dtype = np.dtype(spec["dtype"])
        kernel = (resampling == Resampling.average and (self.floats or dtype == np.uint16)) or (
            resampling == Resampling.mode and dtype == np.uint8
        )
        self.in_memory = self.levels > 0 and spec["width"] % 2 == 0 and kernel
        self.band_cols = (0, spec["width"])  # the columns whose rows ``update`` is given
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
        # Levels made from the level above in memory, as it is made: while the level above has
        # an even width (the kernel is the same at every level).
        self.memory_levels = next((k for k in range(self.levels) if self.sizes[k][1] % 2), self.levels) if self.in_memory else 0
        self.carry: list = [None] * self.levels  # per level, (row, pixels): a source row whose pair is still to come
        self.nodata = None if nodata is None or np.isnan(nodata) else int(nodata)
        # The level files stay open while the stream runs: opening and closing one, six times a
        # strip, costs CPU, and each close writes back blocks the next strip completes. Unlike
        # the scratch rasters they need not survive a kill: a resumed run makes them again.
        self.handles: list = []

    def create(self) -> None:
        """Empty level files (again, on resume: ``update`` then recomputes every level from
        the rows the scratch raster holds), open for the stream."""
        self.close()
        self.done = [0] * self.levels
        for final in self.final:
            final.unlink(missing_ok=True)  # left by a run killed after its last level was renamed
        for k, path in enumerate(self.paths):
            h, w = self.sizes[k + 1]
            spec = {
                key: v
                for key, v in self.spec.items()
                if key not in ("descriptions", "colormap", "tags", "tiled", "blockxsize", "blockysize")
            }
            tiled = dict(tiled=True, blockxsize=256, blockysize=256) if h >= 256 and w >= 256 else {}
            transform = self.spec["transform"] * self.spec["transform"].scale(2 ** (k + 1))
            with rasterio.open(path, "w", **{**spec, "height": h, "width": w, "transform": transform, **tiled}):
                pass
        self.handles = [rasterio.open(path, "r+") for path in self.paths]

    def close(self) -> None:
        for handle in self.handles:
            handle.close()
        self.handles = []

    def resume(self, bands: list, band: int, flushed: int) -> None:
        """A resumed run's levels, remade from the rows the scratch raster holds: every row of
        the bands before ``band`` (``column_bands.Band``), ``flushed`` rows of that one."""
        for b in bands[:band]:
            self.update(self.spec["height"], cols=(b.x0, b.x1))
        self.update(flushed, cols=(bands[band].x0, bands[band].x1))

    def update(self, flushed: int, rows: np.ndarray | None = None, y0: int | None = None, cols: tuple[int, int] | None = None) -> None:
        """Make every level row whose source rows are all final (``flushed`` rows of the
        scratch raster are, in the columns ``cols``: a column band's, the whole width by
        default). ``rows``: the scratch raster's rows [y0, flushed), just written; level 1 is
        then made from them in memory instead of read back from the file (the decimated read
        of the file costs more CPU, see ``half``)."""
        cols = cols or (0, self.spec["width"])
        if rows is not None and rows.ndim == 2:  # a one-band output's rows
            rows = rows[None]
        if cols != self.band_cols:  # a new band: its levels start at row 0
            self.band_cols, self.carry = cols, [None] * self.levels
            self.done = [0] * self.levels
        available = flushed
        for k in range(self.levels):
            sh, h = self.sizes[k][0], self.sizes[k + 1][0]
            upto = h if available >= sh else available // 2
            if upto > self.done[k] and (block := self._block(k, rows, y0)) is not None:
                y0, rows = self.done[k], self._half(k, block, cols[0] >> k)
            else:
                rows = None
                if upto > self.done[k]:
                    self._read_level(k, upto)
            available = self.done[k]

    def _read_level(self, k: int, upto: int) -> None:
        """Rows [done, upto) of level k + 1 in the band's columns, from level k (the scratch
        raster itself for k = 0) in whole row pairs, so the same pixels as GDAL's overview of
        the whole level: GDAL's decimated read, or ``half_float`` of the rows read back.
        In pieces of READ_ROWS level rows, so a resumed run's read-back stays small."""
        (sh, sw), (_h, w) = self.sizes[k], self.sizes[k + 1]
        x0, x1 = self.band_cols
        sx0, sx1 = x0 >> k, min(-(-x1 // 2**k), sw)  # exact: cuts fall on pixels of every streamed level
        dx0, dx1 = x0 >> (k + 1), min(-(-x1 // 2 ** (k + 1)), w)
        for y in range(self.done[k], upto, READ_ROWS):
            y1 = min(y + READ_ROWS, upto)
            window = Window(sx0, 2 * y, sx1 - sx0, min(2 * y1, sh) - 2 * y)
            # Level k through its open handle (its latest rows may not be on disk yet).
            with (
                self.lock if k == 0 else contextlib.nullcontext(),
                rasterio.open(self.base) if k == 0 else contextlib.nullcontext(self.handles[k - 1]) as src,
            ):
                if self.floats:
                    rows = self._average(src.read(window=window))
                else:
                    rows = src.read(window=window, out_shape=(src.count, y1 - y, dx1 - dx0), resampling=self.resampling)
            self.handles[k].write(rows, window=Window(dx0, y, dx1 - dx0, y1 - y))
            self.done[k] = y1

    def _half(self, k: int, block: np.ndarray, x0: int) -> np.ndarray:
        """Level k + 1 of level k's rows from 2 * done[k] on (columns from ``x0``, even), an odd
        last row carried to the next strip; returns the rows made."""
        pairs, w = block.shape[1] // 2, block.shape[2] // 2
        level = np.empty((block.shape[0], pairs, w), block.dtype)
        for r in range(0, pairs, HALF_ROWS):  # in pieces: the sums of a whole strip are 2x to 4x its size
            level[:, r : r + HALF_ROWS] = self._average(block[:, 2 * r : 2 * min(r + HALF_ROWS, pairs)])
        self.handles[k].write(level, window=Window(x0 // 2, self.done[k], w, pairs))
        self.carry[k] = (2 * (self.done[k] + pairs), block[:, 2 * pairs :]) if block.shape[1] % 2 else None
        self.done[k] += pairs
        return level

    def _average(self, block: np.ndarray) -> np.ndarray:
        """GDAL's 2x overview of whole row and column pairs (average or mode), in numpy."""
        if self.resampling == Resampling.mode:
            return mode_2x2(block, self.nodata)
        return half_float(block, self.spec.get("nodata")) if self.floats else half(block, self.nodata)

    def _block(self, k: int, rows, y0) -> np.ndarray | None:
        """Level k's rows from level k + 1's next source row on, or None when they are not in
        memory (a resumed run's rows, a width GDAL does not average in pairs)."""
        if rows is None or k >= self.memory_levels:
            return None
        start = 2 * self.done[k]
        if y0 == start:
            return rows
        carry = self.carry[k]
        if carry is not None and carry[0] == start and y0 == start + 1:
            return np.concatenate([carry[1], rows], axis=1)
        return None

    def finish(self) -> None:
        """The levels that could not be streamed, built by GDAL on the last streamed level
        (or on the scratch raster itself when none could)."""
        self.close()
        rest = self.factors[self.levels :]
        if rest:
            target = self.paths[-1] if self.paths else self.base
            scale = 2**self.levels
            with rasterio.open(target, "r+") as dst:
                dst.build_overviews([f // scale for f in rest], self.resampling)
        for path, final in zip(self.paths, self.final):
            path.replace(final)


def half(block: np.ndarray, nodata: int | None) -> np.ndarray:
    """GDAL's 2x average of bands x rows x columns (even sizes, integers): the mean of each 2x2
    group's valid pixels rounded half up, nodata where none is valid. Row pairs are added
    first, whole rows at a time: contiguous adds, cheaper than four strided quarter sums or
    GDAL's decimated read of the file (docs/streaming.md)."""
    invalid = None if nodata is None else block == nodata
    if invalid is not None and not invalid.any():
        invalid = None
    if invalid is not None and nodata:
        block = np.where(invalid, 0, block)
    total = _sum_2x2(block, np.uint32)
    if invalid is None:
        total += 2
        total >>= 2
        return total.astype(block.dtype)
    count = _sum_2x2(~invalid, np.uint8)
    total += count // 2
    out = np.where(count > 0, total // np.maximum(count, 1), nodata)
    return out.astype(block.dtype)


def half_float(block: np.ndarray, nodata: float | None) -> np.ndarray:
    """GDAL's 2x average overview of float bands x rows x columns (even sizes): each 2x2
    group's valid pixels (not NaN, not ``nodata``) summed in float64 and divided by their
    count, then rounded to float32; NaN where none is valid (nodata where it is a number).
    Its decimated read rounds some pixels the other way, so it cannot stand in for this."""
    invalid = np.isnan(block)
    if nodata is not None and not np.isnan(nodata):
        invalid |= block == nodata
    total = _sum_2x2(np.where(invalid, 0.0, block.astype(np.float64)))
    count = _sum_2x2(~invalid, np.uint8)
    empty = np.nan if nodata is None or np.isnan(nodata) else nodata
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, empty).astype(block.dtype)


def mode_2x2(block: np.ndarray, nodata: int | None) -> np.ndarray:
    """GDAL's 2x mode overview of byte bands x rows x columns (even sizes): the most frequent
    valid value of each 2x2 group, nodata where none is valid. GDAL counts the group's pixels in
    row-major order and keeps a value when its count exceeds the largest so far, so of values
    equally frequent the one that reached that count first wins; the same here, with the four
    prefix counts."""
    v = (block[:, 0::2, 0::2], block[:, 0::2, 1::2], block[:, 1::2, 0::2], block[:, 1::2, 1::2])
    valid = [np.ones(v[0].shape, bool) if nodata is None else x != nodata for x in v]
    best = np.where(valid[0], v[0], 0 if nodata is None else nodata)
    top = valid[0].astype(np.uint8)
    for i in range(1, 4):
        count = valid[i].astype(np.uint8)  # v[i]'s occurrences among the first i + 1 pixels
        for j in range(i):
            count += v[i] == v[j]  # a valid value never equals nodata
        count *= valid[i]
        best = np.where(count > top, v[i], best)
        np.maximum(top, count, out=top)
    return best.astype(block.dtype, copy=False)


def _sum_2x2(a: np.ndarray, dtype=None) -> np.ndarray:
    """Sums of each 2x2 group of bands x rows x columns (even sizes): row pairs first, whole
    rows at a time (``half``'s order, the cheaper one), in ``dtype``."""
    rows = np.add(a[:, 0::2], a[:, 1::2], dtype=dtype)
    return np.add(rows[..., 0::2], rows[..., 1::2])
