"""The stream's writer stage: inferred tiles blended into a strip of rows per column band; at
each tile row's end, the rows no later tile reaches are finished, written into the scratch
rasters, journaled and handed to the overview thread."""

from __future__ import annotations

import time
from typing import Callable

from ..data.normalize import Normalization
from .blend import Blender
from .channel import Channel
from .column_bands import Band, EdgePieces, blend_tile
from .journal import Journal
from .messages import BandStarted, EndOfStream, RowDone, StripFinished, TileInferred
from .scratch import Layer
from .tiles import TileGrid


class WriterStage:
    """Reads ``channel.results`` until ``END``. ``bands``: the scene's column bands; ``start``:
    (band, first unfinished row) where the run starts (a resumed run's strip begins there);
    ``layers``: the outputs written (``scratch.layers_of``); ``bands_out``, ``classes``: the
    reconstruction's band count and the model's class count.
    ``on_tile``: called after each tile is blended."""

    def __init__(
        self,
        channel: Channel,
        grid: TileGrid,
        bands: list[Band],
        start: tuple[int, int],
        journal: Journal,
        edges: EdgePieces,
        norm: Normalization,
        layers: dict[str, Layer],
        bands_out: int,
        classes: int,
        stages,
        cpu,
        on_tile: Callable[[], None] | None = None,
    ):
        self.channel, self.grid, self.bands, self.start = channel, grid, bands, start
        self.journal, self.edges, self.norm = journal, edges, norm
        self.layers, self.bands_out, self.classes = layers, bands_out, classes
        self.stages, self.cpu, self.on_tile = stages, cpu, on_tile

    def run(self) -> None:
        channel, stages, band, blender = self.channel, self.stages, None, None
        while True:
            item = channel.get(channel.results)
            if isinstance(item, EndOfStream):
                return
            t0, c0 = time.perf_counter(), time.thread_time()
            if isinstance(item, BandStarted):
                band = self.bands[item.index]
                base = self.start[1] if band.index == self.start[0] else 0
                blender = Blender(self.grid, self.layers, self.bands_out, self.classes, base, self.norm, (band.x0, band.x1))
                continue
            if isinstance(item, RowDone):
                upto = self.grid.final_rows(item.row)
                if upto > blender.base and channel.wait(channel.scratch_ready):
                    y0 = blender.base
                    arrays = blender.take(upto)
                    t1, c1 = time.perf_counter(), time.thread_time()
                    stages.postprocess += t1 - t0
                    self.cpu.add("blend", c1 - c0)
                    self.journal.add(y0, upto, arrays, band)
                    channel.put(channel.strips, StripFinished(upto, arrays, y0, (band.x0, band.x1)))
                    stages.write += time.perf_counter() - t1
                    self.cpu.add("encode", time.thread_time() - c1)
                continue
            if not isinstance(item, TileInferred):
                raise TypeError(f"the writer cannot take {type(item).__name__}")
            blend_tile(blender, band, self.grid, self.edges, item.tile, item.outputs, item.valid)
            stages.postprocess += time.perf_counter() - t0
            self.cpu.add("blend", time.thread_time() - c0)
            if self.on_tile:
                self.on_tile()
