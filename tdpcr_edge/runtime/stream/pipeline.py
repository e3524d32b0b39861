"""The scene pipeline: stages in threads joined by bounded queues, so memory is bounded by the
queue depth and one strip of rows, never the scene:

    reader (rasterio windows, normalise, mask) -> queue -> inference (this thread: batches of
    one tile row, split among the worker threads) -> queue -> writer (blend into a strip,
    write finished strips) -> queue -> overview thread (the outputs' overview levels)

then assembly into COGs (one thread per output), the run record, scores and the quick look.
Beside them: the runner's activation (a thread of its own where the runner allows it) and
the memory sampler. docs/architecture.md#the-scene-streams-threads draws every thread and
what passes between them."""

from __future__ import annotations

import contextlib
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import rasterio

from ...data.normalize import Normalization
from ...io_utils import write_json
from ..runner import Runner
from ..tiles import TileGrid
from .assemble import Stopped, assemble
from .bands import EdgePieces, blend_tile, column_bands
from .blend import Blender, Journal, journal_fingerprint
from .infer import Activation, InferenceStage
from .overviews import overview_factors
from .scratch import NAMES, ScratchRasters, scratch_specs
from .options import StreamOptions, check_stream_options, check_writable, default_workers, open_runner
from .read import SceneReader, check_not_all_nodata, row_items
from .record import CpuTime, PeakMemory, Stages, run_record

PARTIAL = ".partial"
GDAL_CACHE_MB = 64


def run_stream(opts: StreamOptions, on_tile: Callable[[], None] | None = None, on_start: Callable[[int], None] | None = None,
               opened: tuple[Runner, dict, int] | None = None) -> dict:
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
    runner, meta = open_runner(opts.model, opts.backend)
    workers = runner.share_cpu(opts.workers or default_workers())
    # Deactivated and closed however the run ends: a torch CPU runner restores the thread
    # count it set, and the reader's files are not left open by a refused scene.
    with contextlib.ExitStack() as cleanup:
        activation = Activation(runner)
        cleanup.callback(activation.close)
        return ScenePipeline(opts, runner, meta, workers, cleanup, activation=activation).run(wall0, on_tile, on_start)


class ScenePipeline:
    """One scene through reader, inference workers and writer. Every queue wait checks
    ``stop``, so a failure in any stage ends the others promptly; the first error is raised."""

    def __init__(self, opts: StreamOptions, runner: Runner, meta: dict, workers: int, cleanup: contextlib.ExitStack, keep_active: bool = False,
                 activation: Activation | None = None):
        self.opts, self.runner, self.meta, self.workers = opts, runner, meta, workers
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
        scratch = ScratchRasters(partial, scratch_specs(self.reader, meta, self.norm.optical_bands), overview_factors(self.reader.width, self.reader.height), tuple(b.x0 for b in self.bands[1:]))
        cleanup.callback(scratch.close)
        self.journal = Journal(partial, journal_fingerprint(opts, meta, self.reader, workers, self.bands), scratch)
        if opts.resume and self.journal.load(strict=opts.resume is True):
            self.resumed_from = self.journal.flushed
        else:
            if partial.exists():
                shutil.rmtree(partial)
            partial.mkdir(parents=True)
            self.resumed_from = None
        # A new run's scratch rasters are created by the overview thread as the stream starts,
        # beside the reader's first reads, so their creation is off the set-up's path; the
        # writer waits for them before its first strip.
        self.scratch_ready = threading.Event()
        self.levels_final = {name: threading.Event() for name in NAMES}  # the overview thread's, for the assembly
        if self.resumed_from is not None:
            self.scratch_ready.set()
        # Where the stream starts: a band, and the first tile row touching a row it has not finished.
        self.start = (self.journal.band, self.journal.flushed, self.grid.first_row_touching(self.journal.flushed))
        self.stages = Stages()
        self.cpu = CpuTime()
        self.counts = {"tiles": 0, "skipped": 0}
        self.q_in: queue.Queue = queue.Queue(maxsize=opts.queue_depth)
        self.q_out: queue.Queue = queue.Queue(maxsize=opts.queue_depth)
        self.q_flushed: queue.Queue = queue.Queue(maxsize=1)  # finished strips (their rows) for the overviews
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.on_tile = None

    def put(self, q, item):
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def wait(self, event: threading.Event) -> bool:
        while not event.wait(0.2):
            if self.stop.is_set():
                return False
        return True

    def get(self, q):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _guarded(self, stage: Callable[[], None]) -> Callable[[], None]:
        def run():
            try:
                stage()
            except BaseException as exc:  # noqa: BLE001  (handed to the main thread)
                self.errors.append(exc)
                self.stop.set()

        return run

    def tile_rows(self):
        """(band, tile row) in the order they are streamed, from where the run starts."""
        for band in self.bands[self.start[0] :]:
            for r in range(self.start[2] if band.index == self.start[0] else 0, len(self.grid.ys)):
                yield band, r

    def read_stage(self) -> None:
        opts, stages, current = self.opts, self.stages, None
        for band, r in self.tile_rows():
            if band is not current:
                self.reader.columns(*band.read)
                self.put(self.q_in, ("band", band.index))
                current = band
            for item in row_items(self.reader, self.grid.row(r)[band.cols.start : band.cols.stop], opts, stages, self.cpu):
                if self.stop.is_set():
                    return
                self.put(self.q_in, item)
            self.put(self.q_in, ("row", r))
        self.put(self.q_in, None)

    def write_stage(self) -> None:
        stages, band, blender = self.stages, None, None
        while True:
            item = self.get(self.q_out)
            if item is None:
                return
            t0, c0 = time.perf_counter(), time.thread_time()
            if item[0] == "band":
                band = self.bands[item[1]]
                base = self.start[1] if band.index == self.start[0] else 0
                blender = Blender(self.grid, self.reader.opt.count, len(self.meta["classes"]), base, self.norm, (band.x0, band.x1))
                continue
            if item[0] == "row":
                upto = self.grid.final_rows(item[1])
                if upto > blender.base and self.wait(self.scratch_ready):
                    y0 = blender.base
                    arrays = blender.take(upto)
                    t1, c1 = time.perf_counter(), time.thread_time()
                    stages.postprocess += t1 - t0
                    self.cpu.add("blend", c1 - c0)
                    self.journal.add(y0, upto, arrays, band)
                    self.put(self.q_flushed, (upto, arrays, y0, (band.x0, band.x1)))
                    stages.write += time.perf_counter() - t1
                    self.cpu.add("encode", time.thread_time() - c1)
                continue
            blend_tile(blender, band, self.grid, self.edges, *item[1:])
            stages.postprocess += time.perf_counter() - t0
            self.cpu.add("blend", time.thread_time() - c0)
            if self.on_tile:
                self.on_tile()

    def overview_stage(self) -> None:
        """The outputs' overview levels, brought up to date after each strip, in their own
        thread: on more cores than two they cost the writer nothing."""
        if not self.scratch_ready.is_set():
            self.journal.start()
            self.scratch_ready.set()
        overviews = self.journal.scratch.overviews
        for levels in overviews.values():
            levels.resume(self.bands, *self.start[:2])  # a resumed run remakes the levels of its rows
        # The scene's last strip: the small outputs' levels first, whose COG copies then start
        # beside the reconstruction's last levels, the longest of the three.
        names = sorted(overviews, key=lambda name: name == "reconstruction")
        while True:
            item = self.get(self.q_flushed)
            if item is None:
                break
            c0 = time.thread_time()
            upto, arrays, y0, cols = item
            for name in names:
                overviews[name].update(upto, arrays[name], y0, cols)
                if upto == self.grid.height and cols[1] == self.grid.width:
                    self.levels_final[name].set()
            self.cpu.add("encode", time.thread_time() - c0)
        for final in self.levels_final.values():
            final.set()  # a resumed run that had every row: nothing came

    def run(self, wall0: float, on_tile, on_start) -> dict:
        self.on_tile = on_tile
        if on_start:
            on_start(sum(len(band.cols) for band, _ in self.tile_rows()))
        reader_thread = threading.Thread(target=self._guarded(self.read_stage), daemon=True)
        writer_thread = threading.Thread(target=self._guarded(self.write_stage), daemon=True)
        overview_thread = threading.Thread(target=self._guarded(self.overview_stage), daemon=True)
        for thread in (reader_thread, writer_thread, overview_thread):
            thread.start()
        t0 = None
        try:
            self._guarded(InferenceStage(self).run)()
            self.put(self.q_out, None)  # the writer drains what is queued, then ends (at once if stopped)
            writer_thread.join()
            self.put(self.q_flushed, None)  # likewise the overviews, after the writer's last strip
            if not self.errors:
                # Each output's COG starts once its overview levels are final.
                t0 = time.perf_counter()
                written, cpu = assemble(self.out, self.journal, self.opts.compress, ready=lambda name: self.wait(self.levels_final[name]))
        except Stopped:
            pass  # the stage that failed is in self.errors
        finally:
            self.stop.set()  # a failure anywhere ends every stage still waiting
            for thread in (writer_thread, overview_thread, reader_thread):
                thread.join()
        if self.errors:
            if self.activation is not None and self.activation.failed and self.resumed_from is None:
                shutil.rmtree(self.created or self.out / PARTIAL, ignore_errors=True)  # a runner that cannot start leaves nothing
            raise self.errors[0]
        self.stages.write += time.perf_counter() - t0
        self.cpu.add("encode", cpu)
        for stage, seconds in self.reader.cpu.items():
            self.cpu.add(stage, seconds)
        self.cpu.stop()
        return run_record(self, wall0, written)
