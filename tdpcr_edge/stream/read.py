"""Reading a scene for the stream: optical and SAR checked against each other (bands by name,
CRS, grid; coarser bands resampled, the SAR reprojected with --align), read window by window,
normalised and masked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..data.bands import index_of
from ..data.bandstack import BandStack
from ..data.inputs import resolve_optical, resolve_sar
from ..data.normalize import Normalization
from ..errors import DataError
from .channel import Channel
from .column_bands import Band
from .messages import END, BandStarted, RowDone, TileRead
from .tiles import TileGrid

READ_GROUP = 4  # neighbouring tiles read as one window
CHUNK_ROWS = 256  # decoded rows kept per chunk (rounded up to whole block rows)
CLOUD_BRIGHTNESS = 0.25  # blue-band reflectance above which a pixel looks like cloud


class SceneReader:
    """Optical and SAR of one scene, checked against each other, read by window. Either may be
    several files (``data.inputs``): the optical's bands are resampled onto its finest grid
    (or ``resolution``), the SAR's onto the optical's with ``align``."""

    def __init__(
        self, optical, sar, norm: Normalization, align: bool, resolution: float | None = None, optical_offset: float | None = None
    ):
        self.optical_path, self.norm = Path(str(optical).split(",")[0]), norm
        self.optical_input = resolve_optical(optical, norm.optical_bands, norm.optical_scale, optical_offset)
        self.sar_input = resolve_sar(sar, norm.sar_bands)
        self.opt = BandStack(self.optical_input, "optical", resolution=resolution)
        try:
            self.sar_src = BandStack(self.sar_input, "SAR", grid=self.opt.grid, align=align)
        except BaseException:
            self.opt.close()
            raise
        self.height, self.width = self.opt.height, self.opt.width
        self.profile = self.opt.profile
        # CPU seconds of this reader's thread: decoding the rasters, and normalising and masking.
        self.cpu = {"decode": 0.0, "normalise": 0.0}
        # Decoded rows are kept in chunks aligned to the optical's block rows (at least 256
        # rows, so a striped file is not read a few rows at a time).
        block = self.opt.block_shapes[0][0] if self.opt.block_shapes else 256
        self.chunk = block * max(1, -(-CHUNK_ROWS // block))
        # Each chunk is decoded left to right as reads reach its columns, in whole block
        # columns: the first tiles of a chunk go on while the rest of it is still to decode
        # (decoding a whole chunk first would hold the stream's first tile back).
        self.block_cols = self.opt.block_shapes[0][1] if self.opt.block_shapes else 256
        self._chunks: dict[int, list] = {}  # chunk -> [optical, SAR, valid, columns decoded]
        self.span = (0, self.width)  # the columns chunks hold: a column band's (``columns``)
        # Which band scores cloud: blue (B02) where the model has it, else the first band.
        self.blue = index_of(norm.optical_bands, "B02", "B01", "B03")

    def inputs_record(self) -> dict:
        return {"optical": self.optical_input.record(), "sar": self.sar_input.record()}

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t0 = time.thread_time()
        y0, y1 = int(window.row_off), int(window.row_off + window.height)
        x0, x1 = int(window.col_off), int(window.col_off + window.width)
        o, s, valid = self._rows(y0, y1, x0, x1)
        t1 = time.thread_time()
        self.cpu["decode"] += t1 - t0
        if np.issubdtype(o.dtype, np.floating):
            valid &= np.isfinite(o).all(0)
            o = np.nan_to_num(o)
        if np.issubdtype(s.dtype, np.floating):
            valid &= np.isfinite(s).all(0)
            s = np.nan_to_num(s, nan=self.norm.sar_min_db[0])
        optical, sar = self.norm.optical_to_model(o), self.norm.sar_to_model(s)
        # Zeroing in place only where something is invalid: most tiles are fully valid, and
        # a masked copy of every tile cost the reader a third of its time.
        if not valid.all():
            optical[:, ~valid] = 0.0
            sar[:, ~valid] = 0.0
        self.cpu["normalise"] += time.thread_time() - t1
        return optical, sar, valid

    def columns(self, x0: int, x1: int) -> None:
        """Read only columns [x0, x1) from now on (a column band): chunks hold those columns."""
        self.span = (x0, x1)
        self._chunks.clear()

    def _rows(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows [y0, y1), columns [x0, x1) of both layers, as decoded: from chunks of rows aligned
        to the optical file's block rows, each decoded once and kept while later reads can
        still need it (reads go down the scene). Overlapping tile rows and neighbouring tile
        windows then share decoded blocks instead of decoding them again."""
        if x0 < self.span[0] or x1 > self.span[1]:
            self.columns(0, self.width)  # a read beyond the column band (the scene's scores after the stream)
        first, last = y0 // self.chunk, (y1 - 1) // self.chunk
        for k in [k for k in self._chunks if not first <= k <= last]:
            del self._chunks[k]  # at most the chunks of one read are kept
        x0, x1 = x0 - self.span[0], x1 - self.span[0]
        parts = [self._decoded(k, x1) for k in range(first, last + 1)]
        cuts = []
        for k, (o, s, valid) in zip(range(first, last + 1), parts):
            a, b = max(y0 - k * self.chunk, 0), min(y1 - k * self.chunk, self.chunk)
            cuts.append((o[:, a:b, x0:x1], s[:, a:b, x0:x1], valid[a:b, x0:x1]))
        if len(cuts) == 1:
            o, s, valid = cuts[0]
            return o, s, valid.copy()  # valid is narrowed in place by the caller
        return tuple(np.concatenate([c[i] for c in cuts], axis=1 if i < 2 else 0) for i in range(3))

    def _decoded(self, k: int, upto: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Chunk k, decoded at least to column ``upto`` of the span (to the block column's end)."""
        width, rows = self.span[1] - self.span[0], min(self.chunk, self.height - k * self.chunk)
        chunk = self._chunks.get(k)
        if chunk is None:
            chunk = self._chunks[k] = [
                np.empty((self.opt.count, rows, width), self.opt.read_dtype),
                np.empty((self.sar_src.count, rows, width), self.sar_src.read_dtype),
                np.empty((rows, width), bool),
                0,
            ]
        o, s, valid, done = chunk
        if upto > done:
            # Block columns of the file, which the span's start need not be aligned to.
            end = min(width, -(-(self.span[0] + upto) // self.block_cols) * self.block_cols - self.span[0])
            w = Window(self.span[0] + done, k * self.chunk, end - done, rows)
            cols = slice(done, end)
            self.opt.read_valid(w, out=(o[:, :, cols], valid[:, cols]))
            sar_valid = np.empty((rows, end - done), bool)
            self.sar_src.read_valid(w, out=(s[:, :, cols], sar_valid))
            valid[:, cols] &= sar_valid
            chunk[3] = end
        return o, s, valid

    def close(self) -> None:
        self.sar_src.close()
        self.opt.close()


class ReaderStage:
    """The reader thread: for each (band, tile row) of ``rows``, in order, a ``BandStarted``
    where a band begins, the row's ``TileRead`` messages and a ``RowDone``, all on
    ``channel.tiles``; ``END`` after the last."""

    def __init__(self, channel: Channel, reader: SceneReader, grid: TileGrid, rows: Iterable[tuple[Band, int]], opts, stages, cpu):
        self.channel, self.reader, self.grid, self.rows = channel, reader, grid, rows
        self.opts, self.stages, self.cpu = opts, stages, cpu

    def run(self) -> None:
        channel, current = self.channel, None
        for band, r in self.rows:
            if band is not current:
                self.reader.columns(*band.read)
                channel.put(channel.tiles, BandStarted(band.index))
                current = band
            for item in row_items(self.reader, self.grid.row(r)[band.cols.start : band.cols.stop], self.opts, self.stages, self.cpu):
                if channel.stop.is_set():
                    return
                channel.put(channel.tiles, item)
            channel.put(channel.tiles, RowDone(r))
        channel.put(channel.tiles, END)


def row_items(reader: SceneReader, tiles: list, opts, stages, cpu) -> Iterator[TileRead]:
    """The ``TileRead`` messages of one row of tiles.

    One read per group of neighbouring tiles, the tiles sliced from it: GDAL serves
    overlapping tile windows from a pixel-interleaved GeoTIFF much more slowly than one window
    holding them (docs/experiments.md#streaming). Groups, not whole rows, so memory does not
    grow with the scene's width."""
    for g in range(0, len(tiles), READ_GROUP):
        group = tiles[g : g + READ_GROUP]
        t0 = time.perf_counter()
        first, last = group[0].window, group[-1].window
        c0 = int(first.col_off)
        optical_g, sar_g, valid_g = reader.read(Window(c0, first.row_off, int(last.col_off + last.width) - c0, first.height))
        stages.read += time.perf_counter() - t0
        for t in group:
            t1, c1 = time.perf_counter(), time.thread_time()
            cols = slice(int(t.window.col_off) - c0, int(t.window.col_off + t.window.width) - c0)
            # Copies, so a queued tile does not keep its whole group alive.
            optical, sar, valid = (np.ascontiguousarray(a[..., cols]) for a in (optical_g, sar_g, valid_g))
            skip = opts.skip_clear and valid.any() and cloud_fraction(optical, valid, reader.blue) < opts.clear_fraction
            item = TileRead(t, pad_to(optical, opts.tile), pad_to(sar, opts.tile), valid, skip)
            stages.preprocess += time.perf_counter() - t1
            cpu.add("normalise", time.thread_time() - c1)
            yield item


def pad_to(a: np.ndarray, tile: int) -> np.ndarray:
    h, w = a.shape[-2:]
    if h == tile and w == tile:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, tile - h), (0, tile - w)]
    return np.pad(a, pad, mode="reflect" if h > tile - h and w > tile - w else "edge")


def cloud_fraction(optical: np.ndarray, valid: np.ndarray, blue: int | None = 1) -> float:
    """A cheap cloud score: the share of valid pixels brighter than CLOUD_BRIGHTNESS in the
    blue band (B02), where land is dark and cloud bright."""
    if not valid.any():
        return 0.0
    return float((optical[blue or 0][valid] > CLOUD_BRIGHTNESS).mean())


def check_not_all_nodata(reader: SceneReader, path: Path) -> None:
    """A decimated look at the masks: cheap, and enough to refuse an all-nodata scene. None to
    look at where no file has a mask or a nodata value (GDAL would build an all-valid mask of
    every band, a cost in the stream's set-up for nothing)."""
    if not reader.opt.masked:
        return
    h, w = min(reader.height, 512), min(reader.width, 512)
    masks = reader.opt.read_masks(out_shape=(reader.opt.count, h, w), resampling=Resampling.nearest)
    if not masks.any():
        masks = reader.opt.read_masks()  # small scenes or thin valid areas: look at every pixel
        if not masks.any():
            raise DataError(f"{path}: every pixel is nodata; nothing to process")
