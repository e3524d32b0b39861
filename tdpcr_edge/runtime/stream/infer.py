"""The stream's inference stage: tiles from the reader batched (batches of one tile row),
run on the inference workers, and handed to the writer in the order they came."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .options import worker_slices


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


class InferenceStage:
    """The inference stage of one ``pipeline.ScenePipeline`` (``pipe``): its runner, workers,
    queues and counters."""

    def __init__(self, pipe):
        self.pipe = pipe

    def _infer_batch(self, run: list) -> tuple[dict, float]:
        t0, c0 = time.perf_counter(), time.thread_time()
        res = self.pipe.runner(np.stack([p[2] for p in run]), np.stack([p[3] for p in run]))
        self.pipe.cpu.add("infer", time.thread_time() - c0)
        return res, time.perf_counter() - t0

    def _next_item(self, inflight: deque):
        """The reader's next item; while waiting for it, what leads ``inflight`` and is done is
        handed to the writer: a finished batch does not wait for the next one to be read and
        submitted, so the writer starts on the first tiles as early as it can."""
        while not self.pipe.stop.is_set():
            while inflight and (inflight[0][0] != "batch" or inflight[0][1] is None or inflight[0][1].done()):
                self._emit_front(inflight)
            try:
                return self.pipe.q_in.get(timeout=0.005 if inflight else 0.2)
            except queue.Empty:
                continue
        return None

    def _emit_front(self, inflight: deque) -> None:
        entry = inflight.popleft()
        if entry[0] != "batch":  # a row or band marker
            self.pipe.put(self.pipe.q_out, entry)
            return
        _, future, items = entry
        res = None
        if future is not None:
            res, seconds = future.result()
            self.pipe.stages.infer += seconds
        k = 0
        for _, t, optical, _sar, valid, skip in items:
            h, w = int(t.window.height), int(t.window.width)
            if skip:
                self.pipe.counts["skipped"] += 1
                self.pipe.put(self.pipe.q_out, ("tile", t, optical[:, :h, :w], None, np.zeros((h, w), np.float32), valid))
            else:
                self.pipe.put(self.pipe.q_out, ("tile", t, res["reconstruction"][k][:, :h, :w], res["segmentation"][k][:, :h, :w], res["reliance"][k][0, :h, :w], valid))
                k += 1
            self.pipe.counts["tiles"] += 1

    def run(self) -> None:
        """Batches of one tile row on ``workers`` threads; results leave in submission order
        (row markers included), so the writer sees exactly what a single worker would give."""
        pending: list = []
        inflight: deque = deque()
        with ThreadPoolExecutor(self.pipe.workers, thread_name_prefix="tdpcr-infer") as pool:

            def flush_batch():
                if not pending:
                    return
                for part in worker_slices(len(pending), self.pipe.workers):
                    items = pending[part]
                    run = [p for p in items if not p[5]]
                    inflight.append(("batch", pool.submit(self._infer_batch, run) if run else None, items))
                pending.clear()
                # At most `workers` batches computing or waiting to be emitted: memory stays bounded.
                while sum(e[0] == "batch" for e in inflight) > self.pipe.workers:
                    self._emit_front(inflight)

            try:
                if self.pipe.activation is not None:
                    self.pipe.activation.wait()
                # Already active: leaving it frees the model before the COG assembly, unless
                # the runner serves the next scene too.
                with contextlib.nullcontext() if self.pipe.keep_active else self.pipe.runner:
                    while True:
                        item = self._next_item(inflight)
                        if item is None:
                            break
                        if item[0] != "tile":  # a row or band marker
                            flush_batch()  # batches never span rows, so a resumed run batches alike
                            inflight.append(item)
                            continue
                        pending.append(item)
                        if len(pending) == self.pipe.opts.batch:
                            flush_batch()
                    flush_batch()
                    while inflight:
                        self._emit_front(inflight)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
