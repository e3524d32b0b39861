"""The scene pipeline's wiring: which stage runs in which thread, joined by which queue of
``channel.Channel``; each stage lives in its own module and gets only the channel and the
settings it needs. Memory is bounded by the queue depth and one strip of rows across a column
band, never by the scene. Every thread that runs (docs/architecture.md#the-scene-streams-threads):

    main thread: run_stream -> ScenePipeline (scene opened, tiling, column bands, journal)
      [memory sampler]    record.PeakMemory, the whole run
      [tdpcr-activate]    infer.Activation: runner.activate() beside the set-up, where allowed
      [reader]            read.ReaderStage
          | channel.tiles (queue_depth): BandStarted | TileRead | RowDone | END
          v
      main thread         infer.InferenceStage --submit--> [tdpcr-infer x workers]
          | channel.results (queue_depth): BandStarted | TileInferred | RowDone | END
          v
      [writer]            write.WriterStage: blend, finish rows, scratch rasters, journal
          | channel.strips (1): StripFinished | END
          v
      [overview thread]   overview_thread.OverviewStage: creates the scratch rasters
                          (channel.scratch_ready), each strip's levels (channel.levels_final)
      main thread         assemble.assemble --> [tdpcr-cog x outputs], one COG per output
                          record.run_record: run.json, scores, quick look

Any stage's failure sets ``channel.stop``, which every wait checks; the main thread joins the
others and raises the first error."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import rasterio

from ..backends.runner import Runner
from ..data.normalize import Normalization
from ..io_utils import write_json
from .assemble import Stopped, assemble
from .channel import Channel
from .column_bands import EdgePieces, column_bands
from .infer import Activation, InferenceStage
from .journal import Journal, journal_fingerprint
from .messages import END
from .options import StreamOptions, check_stream_options, check_writable, default_workers, open_runner
from .overview_thread import OverviewStage
from .overviews import overview_factors
from .read import ReaderStage, SceneReader, check_not_all_nodata
from .record import CpuTime, PeakMemory, Stages, run_record
from .scratch import ScratchRasters, layers_of, scratch_specs
from .tiles import TileGrid
from .write import WriterStage

PARTIAL = ".partial"
GDAL_CACHE_MB = 64


def run_stream(
    opts: StreamOptions,
    on_tile: Callable[[], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    opened: tuple[Runner, dict, int] | None = None,
) -> dict:
    """Stream one scene; return the run record also written to ``out/run.json``. ``opened``
    (runner, meta, workers from ``open_runner`` and ``share_cpu``) reuses a runner across
    scenes, as an archive does: it is left active, its model loaded, for the next scene."""
    # GDAL's block cache defaults to 5% of RAM and fills in proportion to the scene (COG
    # overviews, decimated quick-look reads): capped, so memory stays bounded by the tiling.
    with PeakMemory() as memory, rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        record = _run_stream(opts, on_tile, on_start, opened)
    record["peak_rss_mb"] = round(memory.peak / 2**20, 1)
    write_json(Path(opts.out) / "run.json", record)
    shutil.rmtree(Path(opts.out) / PARTIAL, ignore_errors=True)
    return record


def _run_stream(opts: StreamOptions, on_tile, on_start, opened=None) -> dict:
    wall0 = time.perf_counter()
    check_stream_options(opts)  # every check that can fail on the inputs, before anything is created
    if opened is not None:
        runner, meta, workers = opened
        with contextlib.ExitStack() as cleanup:
            return ScenePipeline(opts, runner, meta, workers, cleanup, keep_active=True).run(wall0, on_tile, on_start)
    runner, meta = open_runner(opts.model, opts.backend, opts.public_key)
    workers = runner.share_cpu(opts.workers or default_workers())
    # Deactivated and closed however the run ends: a torch CPU runner restores the thread
    # count it set, and the reader's files are not left open by a refused scene.
    with contextlib.ExitStack() as cleanup:
        activation = Activation(runner)
        cleanup.callback(activation.close)
        return ScenePipeline(opts, runner, meta, workers, cleanup, activation=activation).run(wall0, on_tile, on_start)


class ScenePipeline:
    """One scene: its reader, tiling, column bands and journal, and the stages that stream it,
    wired through one ``Channel``; ``run`` starts the threads and makes the COGs."""

    def __init__(
        self,
        opts: StreamOptions,
        runner: Runner,
        meta: dict,
        workers: int,
        cleanup: contextlib.ExitStack,
        keep_active: bool = False,
        activation: Activation | None = None,
    ):
        self.opts, self.runner, self.meta, self.workers = opts, runner, meta, workers
        self.layers = layers_of(meta["outputs"])  # the files this run writes, which every stage goes by
        self.keep_active, self.activation = keep_active, activation
        self.norm = Normalization.from_dict(meta["normalization"])
        self.reader = SceneReader(opts.optical, opts.sar, self.norm, opts.align, opts.resolution, opts.optical_offset)
        cleanup.callback(self.reader.close)
        self.grid = TileGrid(self.reader.height, self.reader.width, opts.tile, opts.overlap)
        check_not_all_nodata(self.reader, opts.optical)
        self.out = Path(opts.out)
        # The topmost folder of ``out`` this run creates: a runner that cannot start removes it.
        self.created = next((p for p in reversed([self.out, *self.out.parents]) if not p.exists()), None)
        check_writable(self.out)
        partial = self.out / PARTIAL
        self.bands = column_bands(self.grid, width=opts.band_width)
        self.edges = EdgePieces(partial)
        scratch = ScratchRasters(
            partial,
            scratch_specs(self.reader, meta, self.norm.optical_bands, self.layers),
            overview_factors(self.reader.width, self.reader.height),
            tuple(b.x0 for b in self.bands[1:]),
        )
        cleanup.callback(scratch.close)
        self.journal = Journal(partial, journal_fingerprint(opts, meta, self.reader, workers, self.bands), scratch)
        if opts.resume and self.journal.load(strict=opts.resume is True):
            self.resumed_from = self.journal.flushed
        else:
            if partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True)
            self.resumed_from = None
        self.channel = Channel(opts.queue_depth, self.layers)
        # A new run's scratch rasters are created by the overview thread as the stream starts,
        # beside the reader's first reads, so their creation is off the set-up's path; the
        # writer waits for them before its first strip.
        if self.resumed_from is not None:
            self.channel.scratch_ready.set()
        # Where the stream starts: a band, and the first tile row touching a row it has not finished.
        self.start = (self.journal.band, self.journal.flushed, self.grid.first_row_touching(self.journal.flushed))
        self.stages = Stages()
        self.cpu = CpuTime()
        self.counts = {"tiles": 0, "skipped": 0}

    def tile_rows(self):
        """(band, tile row) in the order they are streamed, from where the run starts."""
        for band in self.bands[self.start[0] :]:
            for r in range(self.start[2] if band.index == self.start[0] else 0, len(self.grid.ys)):
                yield band, r

    def run(self, wall0: float, on_tile, on_start) -> dict:
        opts, channel = self.opts, self.channel
        if on_start:
            on_start(sum(len(band.cols) for band, _ in self.tile_rows()))
        reader = ReaderStage(channel, self.reader, self.grid, self.tile_rows(), opts, self.stages, self.cpu)
        inference = InferenceStage(
            channel,
            self.runner,
            self.layers,
            self.workers,
            opts.batch,
            self.stages,
            self.cpu,
            self.counts,
            self.activation,
            self.keep_active,
        )
        writer = WriterStage(
            channel,
            self.grid,
            self.bands,
            self.start[:2],
            self.journal,
            self.edges,
            self.norm,
            self.layers,
            self.reader.opt.count,
            len(self.meta["classes"]),
            self.stages,
            self.cpu,
            on_tile,
        )
        overviews = OverviewStage(channel, self.journal, self.grid, self.bands, self.start[:2], self.cpu)
        reader_thread = threading.Thread(target=channel.guarded(reader.run), daemon=True)
        writer_thread = threading.Thread(target=channel.guarded(writer.run), daemon=True)
        overview_thread = threading.Thread(target=channel.guarded(overviews.run), daemon=True)
        for thread in (reader_thread, writer_thread, overview_thread):
            thread.start()
        t0 = None
        try:
            channel.guarded(inference.run)()
            channel.put(channel.results, END)  # the writer drains what is queued, then ends (at once if stopped)
            writer_thread.join()
            channel.put(channel.strips, END)  # likewise the overviews, after the writer's last strip
            if not channel.errors:
                # Each output's COG starts once its overview levels are final.
                t0 = time.perf_counter()
                written, cpu = assemble(self.out, self.journal, opts.compress, ready=lambda name: channel.wait(channel.levels_final[name]))
        except Stopped:
            pass  # the stage that failed is in channel.errors
        finally:
            channel.stop.set()  # a failure anywhere ends every stage still waiting
            for thread in (writer_thread, overview_thread, reader_thread):
                thread.join()
        if channel.errors:
            if self.activation is not None and self.activation.failed and self.resumed_from is None:
                shutil.rmtree(self.created or self.out / PARTIAL, ignore_errors=True)  # a runner that cannot start leaves nothing
            raise channel.errors[0]
        self.stages.write += time.perf_counter() - t0
        self.cpu.add("encode", cpu)
        for stage, seconds in self.reader.cpu.items():
            self.cpu.add(stage, seconds)
        self.cpu.stop()
        return run_record(self, wall0, written)
