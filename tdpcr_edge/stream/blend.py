"""Blending: tiles are added into a strip of rows with feathered weights; rows no later tile
reaches are finished (``Blender.take``) for the writer to write and journal (``journal``)."""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from ..data.normalize import Normalization
from .tiles import TileGrid, spans


class _Sums:
    """Weighted sums of the model outputs and their weights, on some grid of pixels."""

    def __init__(self, bands: int, classes: int, rows: int, cols: int):
        self.recon = np.zeros((bands, rows, cols), np.float32)
        self.logits = np.zeros((classes, rows, cols), np.float32)
        self.rel, self.w, self.wcls = (np.zeros((rows, cols), np.float32) for _ in range(3))

    def add(self, dst: tuple[slice, slice], part, wt, recon, logits, rel, tmp) -> None:
        for acc, src in ((self.recon, recon), (self.logits, logits)):
            if src is not None:
                t = tmp[: src.shape[0], : wt.shape[0], : wt.shape[1]]
                np.multiply(src[(slice(None), *part)], wt, out=t)
                acc[(slice(None), *dst)] += t
        self.rel[dst] += rel[part] * wt
        self.w[dst] += wt
        if logits is not None:
            self.wcls[dst] += wt

    def mean(self, rows: slice, norm: Normalization) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reconstruction (DN), classes and reliance of the pixels of ``rows``."""
        w = np.maximum(self.w[rows], 1e-12)
        recon = norm.optical_from_model(self.recon[:, rows] / w)
        classes = np.argmax(self.logits[:, rows], axis=0).astype(np.uint8)
        classes[self.wcls[rows] == 0] = 255
        return recon, classes, self.rel[rows] / w

    def shift(self, n: int) -> None:
        """Drop the first ``n`` rows; the rest move up, zeros come in below."""
        keep = self.w.shape[0] - n
        for a in (self.recon, self.logits, self.rel[None], self.w[None], self.wcls[None]):
            a[:, :keep] = a[:, n:]  # numpy copies overlapping slices as if through a buffer
            a[:, keep:] = 0


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

    def __init__(self, grid: TileGrid, bands: int, classes: int, base: int, norm: Normalization, cols: tuple[int, int] | None = None):
        tile = grid.tile
        self.base, self.norm = base, norm
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
        self.rows = _Sums(bands, classes, max(slots, 1), width)
        self.cols = _Sums(bands, classes, tile, max(int(self.col_rank[width]), 1))
        self.valid = np.zeros((tile, width), bool)
        self.out = {
            "reconstruction": np.zeros((bands, tile, width), np.uint16),
            "classes": np.zeros((tile, width), np.uint8),
            "confidence": np.zeros((tile, width), np.float32),
        }
        self._tmp = np.empty((max(bands, classes, 1), tile, tile), np.float32)  # weighted tile part, reused

    def add(self, window: Window, weight: np.ndarray, recon, logits, rel, valid, start: int = 0) -> None:
        """Blend one tile. ``start``: the tile column the arrays begin at (an edge piece of the
        band before, ``column_bands.EdgePieces``); columns outside the strip's are left out."""
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
        args = (put, weight, recon, logits, rel, valid)
        for r0, r1 in ((ny0, ey0), (ey1, ny1)):  # rows no tile owns: their row slots, every column
            if r1 > r0:
                slots = slice(int(self.row_rank[y0 + r0]) - self.slot0, int(self.row_rank[y0 + r1]) - self.slot0)
                self._blend(self.rows, (slice(r0, r1), slice(nx0, nx1)), (slots, _moved(slice(nx0, nx1), put[1])), *args)
        if ey1 > ey0:
            if ex1 > ex0:
                self._own((slice(ey0, ey1), slice(ex0, ex1)), put, recon, logits, rel, valid)
            for c0, c1 in ((nx0, ex0), (ex1, nx1)):  # columns no tile owns: strip rows, their column slots
                if c1 > c0:
                    slots = slice(int(self.col_rank[x0 - self.x0 + c0]), int(self.col_rank[x0 - self.x0 + c1]))
                    self._blend(self.cols, (slice(ey0, ey1), slice(c0, c1)), (_moved(slice(ey0, ey1), put[0]), slots), *args)

    def _own(self, part, put, recon, logits, rel, valid) -> None:
        dst, src = (_moved(part[0], put[0]), _moved(part[1], put[1])), (part[0], _moved(part[1], -put[2]))
        self.out["reconstruction"][(slice(None), *dst)] = self.norm.optical_from_model(recon[(slice(None), *src)])
        self.out["classes"][dst] = 255 if logits is None else np.argmax(logits[(slice(None), *src)], axis=0)
        self.out["confidence"][dst] = rel[src]
        self.valid[dst] = valid[src]

    def _blend(self, sums: _Sums, part, dst, put, weight, recon, logits, rel, valid) -> None:
        src = (part[0], _moved(part[1], -put[2]))
        sums.add(dst, src, weight[part], recon, logits, rel, self._tmp)
        self.valid[_moved(part[0], put[0]), _moved(part[1], put[1])] |= valid[src]

    def take(self, upto: int) -> dict[str, np.ndarray]:
        """Finish rows [base, upto) and shift the strip up."""
        n, out = upto - self.base, self.out
        for owned, a, b in _runs(self.ys.owned_mask[self.base : upto]):
            rows = slice(a, b)
            if not owned:
                slots = slice(int(self.row_rank[self.base + a]) - self.slot0, int(self.row_rank[self.base + b]) - self.slot0)
                out["reconstruction"][:, rows], out["classes"][rows], out["confidence"][rows] = self.rows.mean(slots, self.norm)
            elif self.shared_cols.size:
                recon, classes, conf = self.cols.mean(rows, self.norm)
                (
                    out["reconstruction"][:, rows, self.shared_cols],
                    out["classes"][rows, self.shared_cols],
                    out["confidence"][rows, self.shared_cols],
                ) = recon, classes, conf
        done = {k: v[..., :n, :].copy() for k, v in out.items()}
        valid = self.valid[:n]
        if not valid.all():
            invalid = ~valid
            done["reconstruction"][:, invalid] = 0
            done["classes"][invalid] = 255
            done["confidence"][invalid] = np.nan
        keep = self.valid.shape[0] - n  # rows later tiles still add to
        for a in (out["reconstruction"], out["classes"][None], out["confidence"][None], self.valid[None]):
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
