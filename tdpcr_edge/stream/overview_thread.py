"""The overview thread: a new run's scratch rasters created beside the reader's first reads,
then each finished strip's overview levels (``overviews.StripOverviews``) brought up to date:
on more cores than two they cost the writer nothing."""

from __future__ import annotations

import time

from .channel import Channel
from .column_bands import Band
from .journal import Journal
from .messages import EndOfStream
from .tiles import TileGrid


class OverviewStage:
    """Reads ``channel.strips`` until ``END``; sets ``channel.scratch_ready`` once the scratch
    rasters exist and ``channel.levels_final[output]`` once that output's levels are final.
    ``start``: (band, first unfinished row) where the run starts."""

    def __init__(self, channel: Channel, journal: Journal, grid: TileGrid, bands: list[Band], start: tuple[int, int], cpu):
        self.channel, self.journal, self.grid, self.bands, self.start, self.cpu = channel, journal, grid, bands, start, cpu

    def run(self) -> None:
        channel = self.channel
        if not channel.scratch_ready.is_set():
            self.journal.start()
            channel.scratch_ready.set()
        overviews = self.journal.scratch.overviews
        for levels in overviews.values():
            levels.resume(self.bands, *self.start)  # a resumed run remakes the levels of its rows
        # The scene's last strip: the small outputs' levels first, whose COG copies then start
        # beside the reconstruction's last levels, the longest of them.
        names = sorted(overviews, key=lambda name: name == "reconstruction")
        while True:
            item = channel.get(channel.strips)
            if isinstance(item, EndOfStream):
                break
            c0 = time.thread_time()
            for name in names:
                overviews[name].update(item.upto, item.arrays[name], item.y0, item.cols)
                if item.upto == self.grid.height and item.cols[1] == self.grid.width:
                    channel.levels_final[name].set()
            self.cpu.add("encode", time.thread_time() - c0)
        for final in channel.levels_final.values():
            final.set()  # a resumed run that had every row: nothing came
