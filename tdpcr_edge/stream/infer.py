"""The stream's inference stage: tiles from the reader batched (batches of one tile row),
run on the inference workers, and handed to the writer in the order they came."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError
from .channel import POLL_S, Channel
from .messages import END, EndOfStream, TileInferred, TileRead
from .options import worker_slices
from .scratch import Layer


class Activation:
    """The runner activated for one scene: on a thread of its own while the scene is opened
    and its first tiles read, where the runner allows it (so a compile, even from the cache,
    overlaps the set-up), else at once on this thread. ``wait`` before the first call;
    ``close`` deactivates however the run ends."""

    def __init__(self, runner):
        self.runner, self.error = runner, None
        self.thread = None
        if runner.activates_on_any_thread:
            self.thread = threading.Thread(target=self._activate, name="tdpcr-activate", daemon=True)
            self.thread.start()
        else:
            runner.activate()

    def _activate(self) -> None:
        try:
            self.runner.activate()
        except BaseException as exc:  # noqa: BLE001  (raised by wait, on the inference stage)
            self.error = exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error

    @property
    def failed(self) -> bool:
        return self.error is not None

    def close(self) -> None:
        if self.thread is not None:
            self.thread.join()
        self.runner.deactivate()


@dataclass
class _Batch:
    """Tiles of one row submitted together; ``future`` is None when all are skipped."""

    future: Future | None
    items: list[TileRead]


def tile_outputs(layers: dict[str, Layer], res: dict, k: int, h: int, w: int) -> dict[str, np.ndarray]:
    """Tile ``k`` of a batch's results, cut to h x w, per model output the run writes."""
    out = {}
    for name, layer in layers.items():
        if layer.output not in res:
            raise CheckpointError(f"the runner returned {', '.join(res)} but no {layer.output}, which the model has ({name}.tif)")
        v = res[layer.output][k][:, :h, :w]
        out[layer.output] = v.mean(axis=0, keepdims=True) if layer.band_mean else v
    return out


def skipped_outputs(layers: dict[str, Layer], optical: np.ndarray) -> dict[str, np.ndarray | None]:
    """A skipped tile's outputs (``Layer.skipped``), its input ``optical`` cut to its size."""
    zero = np.zeros((1, *optical.shape[-2:]), np.float32)
    return {layer.output: {"input": optical, "none": None, "zero": zero}[layer.skipped] for layer in layers.values()}


class InferenceStage:
    """Tiles from ``channel.tiles`` run on ``workers`` threads, their results (the model's
    ``layers``, ``scratch.layers_of``) put on ``channel.results``; tiles and skips counted in
    ``counts``, seconds in ``stages`` and ``cpu``. ``activation``: waited for before the first
    call (None: the runner is active); ``keep_active``: left active afterwards, for the next scene."""

    def __init__(
        self,
        channel: Channel,
        runner,
        layers: dict[str, Layer],
        workers: int,
        batch: int,
        stages,
        cpu,
        counts: dict,
        activation=None,
        keep_active: bool = False,
    ):
        self.channel, self.runner, self.layers, self.workers, self.batch = channel, runner, layers, workers, batch
        self.stages, self.cpu, self.counts = stages, cpu, counts
        self.activation, self.keep_active = activation, keep_active

    def _infer_batch(self, run: list[TileRead]) -> tuple[dict, float]:
        t0, c0 = time.perf_counter(), time.thread_time()
        res = self.runner(np.stack([p.optical for p in run]), np.stack([p.sar for p in run]))
        self.cpu.add("infer", time.thread_time() - c0)
        return res, time.perf_counter() - t0

    def _next_item(self, inflight: deque):
        """The reader's next item; while waiting for it, what leads ``inflight`` and is done is
        handed to the writer: a finished batch does not wait for the next one to be read and
        submitted, so the writer starts on the first tiles as early as it can."""
        while not self.channel.stop.is_set():
            while inflight and (not isinstance(inflight[0], _Batch) or inflight[0].future is None or inflight[0].future.done()):
                self._emit_front(inflight)
            item = self.channel.poll(self.channel.tiles, 0.005 if inflight else POLL_S)
            if item is not None:
                return item
        return END

    def _emit_front(self, inflight: deque) -> None:
        entry = inflight.popleft()
        if not isinstance(entry, _Batch):  # a row or band marker
            self.channel.put(self.channel.results, entry)
            return
        res = None
        if entry.future is not None:
            res, seconds = entry.future.result()
            self.stages.infer += seconds
        k = 0
        for item in entry.items:
            t = item.tile
            h, w = int(t.window.height), int(t.window.width)
            if item.skip:
                self.counts["skipped"] += 1
                out = TileInferred(t, skipped_outputs(self.layers, item.optical[:, :h, :w]), item.valid)
            else:
                out = TileInferred(t, tile_outputs(self.layers, res, k, h, w), item.valid)
                k += 1
            self.channel.put(self.channel.results, out)
            self.counts["tiles"] += 1

    def run(self) -> None:
        """Batches of one tile row on ``workers`` threads; results leave in submission order
        (row markers included), so the writer sees exactly what a single worker would give."""
        pending: list[TileRead] = []
        inflight: deque = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="tdpcr-infer") as pool:

            def flush_batch():
                if not pending:
                    return
                for part in worker_slices(len(pending), self.workers):
                    items = pending[part]
                    run = [p for p in items if not p.skip]
                    inflight.append(_Batch(pool.submit(self._infer_batch, run) if run else None, items))
                pending.clear()
                # At most `workers` batches computing or waiting to be emitted: memory stays bounded.
                while sum(isinstance(e, _Batch) for e in inflight) > self.workers:
                    self._emit_front(inflight)

            try:
                if self.activation is not None:
                    self.activation.wait()
                # Already active: leaving it frees the model before the COG assembly, unless
                # the runner serves the next scene too.
                with contextlib.nullcontext() if self.keep_active else self.runner:
                    while True:
                        item = self._next_item(inflight)
                        if isinstance(item, EndOfStream):
                            break
                        if not isinstance(item, TileRead):  # a row or band marker
                            flush_batch()  # batches never span rows, so a resumed run batches alike
                            inflight.append(item)
                            continue
                        pending.append(item)
                        if len(pending) == self.batch:
                            flush_batch()
                    flush_batch()
                    while inflight:
                        self._emit_front(inflight)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
