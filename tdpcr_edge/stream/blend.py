"""Blending: tiles are added into a strip of rows with feathered weights; rows no later tile
reaches are finished (``Blender.take``) for the writer to write and journal (``journal``)."""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from ..data.normalize import Normalization
from .scratch import Layer
from .tiles import TileGrid, spans


class _Sums:
    """Weighted sums of each layer's tile values and their weights, on some grid of pixels.
    A layer a tile may lack (a skipped tile's classes) has weights of its own, so its pixels
    come from the tiles that have it, nodata where none has."""

    def __init__(self, channels: dict[str, int], own: tuple[str, ...], rows: int, cols: int):
        self.acc = {name: np.zeros((c, rows, cols), np.float32) for name, c in channels.items()}
        self.w = np.zeros((rows, cols), np.float32)
        self.own = {name: np.zeros((rows, cols), np.float32) for name in own}

    def add(self, dst: tuple[slice, slice], part, wt, values: dict, tmp) -> None:
        for name, acc in self.acc.items():
            src = values[name]
            if src is None:
                continue
            t = tmp[: src.shape[0], : wt.shape[0], : wt.shape[1]]
            np.multiply(src[(slice(None), *part)], wt, out=t)
            acc[(slice(None), *dst)] += t
            if name in self.own:
                self.own[name][dst] += wt
        self.w[dst] += wt

    def mean(self, rows: slice, layers: dict[str, Layer], norm: Normalization) -> dict[str, np.ndarray]:
        """Each layer's output pixels (channels x rows x columns) of ``rows``."""
        w = np.maximum(self.w[rows], 1e-12)
        out = {}
        for name, acc in self.acc.items():
            own = self.own.get(name)
            weight = w if own is None else np.maximum(own[rows], 1e-12)
            out[name] = _final(layers[name], acc[:, rows], weight, norm)
            if own is not None:
                out[name][:, own[rows] == 0] = layers[name].nodata
        return out

    def shift(self, n: int) -> None:
        """Drop the first ``n`` rows; the rest move up, zeros come in below."""
        keep = self.w.shape[0] - n
        for a in (*self.acc.values(), self.w[None], *(w[None] for w in self.own.values())):
            a[:, :keep] = a[:, n:]  # numpy copies overlapping slices as if through a buffer
            a[:, keep:] = 0


def _final(layer: Layer, values: np.ndarray | None, weight: np.ndarray | None, norm: Normalization):
    """A layer's output pixels from its weighted sums (``weight``: their weights) or from one
    tile's own values (``weight`` None); nodata where the tile has none."""
    if values is None:
        return layer.nodata
    if layer.blend == "argmax":  # on the sums: dividing first could round two logits equal
        return np.argmax(values, axis=0).astype(np.uint8)[None]
    mean = values if weight is None else values / weight
    return norm.optical_from_model(mean) if layer.blend == "reflectance" else mean


class Blender:
    """One strip of rows [base, base + tile), across the scene columns [x0, x1) (``cols``: a
    column band; the whole width by default).

    Where one tile alone covers a pixel with weight exactly 1 (``tiles.spans``: 86% of the
    pixels at tile 256, overlap 32), that tile's values are the output: converted at once, in
    tile-sized pieces that stay in cache, into the strip's output arrays. Only the rest, the
    bands where neighbours' weights overlap, is summed with weights and divided when the rows
    are final: rows no tile owns in ``rows`` (every column, only as many rows as a strip can
    hold of them), the columns no tile owns in ``cols`` (every row of the strip, only those
    columns), so no float sums span the whole strip (docs/streaming.md). The sums are the
    same sums as over every pixel (a weight of 0 adds nothing, x * 1 / 1 is x), so the
    outputs are the weighted mean bit for bit (tested)."""

    def __init__(
        self,
        grid: TileGrid,
        layers: dict[str, Layer],
        bands: int,
        classes: int,
        base: int,
        norm: Normalization,
        cols: tuple[int, int] | None = None,
    ):
        tile = grid.tile
        self.layers, self.base, self.norm = layers, base, norm
        # Channels summed per layer: the optical bands, the class logits, one band otherwise.
        channels = {name: classes if layer.blend == "argmax" else layer.bands or bands for name, layer in layers.items()}
        own = tuple(name for name, layer in layers.items() if layer.skipped == "none")
        self.x0, self.x1 = cols or (0, grid.width)
        width = self.x1 - self.x0
        self.ys, self.xs = spans(grid.ys, grid.height, tile, grid.overlap), spans(grid.xs, grid.width, tile, grid.overlap)
        self.row_of, self.col_of = {y: i for i, y in enumerate(grid.ys)}, {x: j for j, x in enumerate(grid.xs)}
        # Slots of the rows (columns) no tile owns: rank[y] of them come before scene row y.
        self.row_rank = np.concatenate([[0], np.cumsum(~self.ys.owned_mask)])
        col_rank = np.concatenate([[0], np.cumsum(~self.xs.owned_mask)])
        self.col_rank = col_rank[self.x0 :] - col_rank[self.x0]  # from the band's first column
        self.shared_cols = np.flatnonzero(~self.xs.owned_mask[self.x0 : self.x1])
        y = np.arange(grid.height)
        slots = int((self.row_rank[np.minimum(y + tile, grid.height)] - self.row_rank[y]).max()) if grid.height else 0
        self.slot0 = int(self.row_rank[min(base, grid.height)])
        self.rows = _Sums(channels, own, max(slots, 1), width)
        self.cols = _Sums(channels, own, tile, max(int(self.col_rank[width]), 1))
        self.valid = np.zeros((tile, width), bool)
        self.out = {name: np.zeros((layer.bands or bands, tile, width), layer.dtype) for name, layer in layers.items()}
        self._tmp = np.empty((max(channels.values()), tile, tile), np.float32)  # weighted tile part, reused

    def add(self, window: Window, weight: np.ndarray, outputs: dict, valid, start: int = 0) -> None:
        """Blend one tile: ``outputs`` per model output, channels x rows x columns (None: the
        tile has none, as a skipped tile has no logits). ``start``: the tile column the arrays
        begin at (an edge piece of the band before, ``column_bands.EdgePieces``); columns
        outside the strip's are left out."""
        values = {name: outputs.get(layer.output) for name, layer in self.layers.items()}
        y0, x0 = int(window.row_off), int(window.col_off)
        skip = max(0, self.base - y0)  # rows already final (resume)
        (ny0, ny1), (ey0, ey1) = self.ys.nonzero[self.row_of[y0]], self.ys.owned[self.row_of[y0]]
        (nx0, nx1), (ex0, ex1) = self.xs.nonzero[self.col_of[x0]], self.xs.owned[self.col_of[x0]]
        ny0 = max(ny0, skip)
        nx0, nx1 = max(nx0, start, self.x0 - x0), min(nx1, self.x1 - x0)
        if ny0 >= ny1 or nx0 >= nx1:
            return
        ey0, ey1 = (max(ey0, ny0), max(ey1, ny0)) if ey1 > ey0 else (ny0, ny0)
        ex0, ex1 = max(ex0, nx0), min(ex1, nx1)
        if ex1 <= ex0:
            ex0 = ex1 = nx0  # the tile's column owns nothing here: its whole width is shared
        put = (y0 - self.base, x0 - self.x0, start)  # tile offsets -> strip rows, strip columns, array columns
        args = (put, weight, values, valid)
        for r0, r1 in ((ny0, ey0), (ey1, ny1)):  # rows no tile owns: their row slots, every column
            if r1 > r0:
                slots = slice(int(self.row_rank[y0 + r0]) - self.slot0, int(self.row_rank[y0 + r1]) - self.slot0)
                self._blend(self.rows, (slice(r0, r1), slice(nx0, nx1)), (slots, _moved(slice(nx0, nx1), put[1])), *args)
        if ey1 > ey0:
            if ex1 > ex0:
                self._own((slice(ey0, ey1), slice(ex0, ex1)), put, values, valid)
            for c0, c1 in ((nx0, ex0), (ex1, nx1)):  # columns no tile owns: strip rows, their column slots
                if c1 > c0:
                    slots = slice(int(self.col_rank[x0 - self.x0 + c0]), int(self.col_rank[x0 - self.x0 + c1]))
                    self._blend(self.cols, (slice(ey0, ey1), slice(c0, c1)), (_moved(slice(ey0, ey1), put[0]), slots), *args)

    def _own(self, part, put, values, valid) -> None:
        dst, src = (_moved(part[0], put[0]), _moved(part[1], put[1])), (part[0], _moved(part[1], -put[2]))
        for name, layer in self.layers.items():
            v = values[name]
            self.out[name][(slice(None), *dst)] = _final(layer, None if v is None else v[(slice(None), *src)], None, self.norm)
        self.valid[dst] = valid[src]

    def _blend(self, sums: _Sums, part, dst, put, weight, values, valid) -> None:
        src = (part[0], _moved(part[1], -put[2]))
        sums.add(dst, src, weight[part], values, self._tmp)
        self.valid[_moved(part[0], put[0]), _moved(part[1], put[1])] |= valid[src]

    def take(self, upto: int) -> dict[str, np.ndarray]:
        """Finish rows [base, upto) and shift the strip up: each layer's pixels, bands x rows x columns."""
        n, out = upto - self.base, self.out
        for owned, a, b in _runs(self.ys.owned_mask[self.base : upto]):
            rows = slice(a, b)
            if not owned:
                slots = slice(int(self.row_rank[self.base + a]) - self.slot0, int(self.row_rank[self.base + b]) - self.slot0)
                for name, v in self.rows.mean(slots, self.layers, self.norm).items():
                    out[name][:, rows] = v
            elif self.shared_cols.size:
                for name, v in self.cols.mean(rows, self.layers, self.norm).items():
                    out[name][:, rows, self.shared_cols] = v
        done = {k: v[:, :n].copy() for k, v in out.items()}
        valid = self.valid[:n]
        if not valid.all():
            invalid = ~valid
            for name, layer in self.layers.items():
                done[name][:, invalid] = layer.nodata
        keep = self.valid.shape[0] - n  # rows later tiles still add to
        for a in (*out.values(), self.valid[None]):
            a[:, :keep] = a[:, n:]
            a[:, keep:] = 0
        used = int(self.row_rank[upto]) - self.slot0
        self.rows.shift(used)
        self.cols.shift(n)
        self.slot0 += used
        self.base = upto
        return done


def _moved(s: slice, by: int) -> slice:
    return slice(s.start + by, s.stop + by)


def _runs(mask: np.ndarray):
    """(value, start, stop) of each run of equal values in a boolean vector."""
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), mask.size]
    return [(bool(mask[a]), a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
