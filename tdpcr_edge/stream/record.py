"""The run record of a scene stream: seconds per stage, peak resident memory, and run.json."""

from __future__ import annotations

import resource
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..records.run import RUN_SCHEMA


class PeakMemory:
    """Peak resident memory of this process during a run, sampled from /proc/self/statm.
    getrusage's ru_maxrss would be wrong for a CLI started from a big parent: Linux carries
    the maximum across execve."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current() -> int:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * resource.getpagesize()
        except (OSError, ValueError, IndexError):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


@dataclass
class Stages:
    """Seconds spent per stage, summed over tiles (stages overlap in time)."""

    read: float = 0.0
    preprocess: float = 0.0
    infer: float = 0.0
    postprocess: float = 0.0
    write: float = 0.0


# What each CPU second of a stream went to (time.thread_time in each stage's thread; "other"
# is the rest of the process's CPU time: runtime-owned threads such as OpenMP or OpenVINO
# pools and GDAL's, the main thread, the interpreter).
CPU_STAGES = ("decode", "normalise", "infer", "blend", "encode")


class CpuTime:
    """CPU seconds per stage, added from several threads."""

    def __init__(self):
        self.seconds = dict.fromkeys(CPU_STAGES, 0.0)
        self._lock = threading.Lock()
        self._start = time.process_time()
        self.total: float | None = None

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] += seconds

    def stop(self) -> None:
        self.total = time.process_time() - self._start

    def per_tile_ms(self, tiles: int) -> dict[str, float]:
        n = max(tiles, 1)
        out = {k: round(1e3 * v / n, 3) for k, v in self.seconds.items()}
        if self.total is not None:
            out["other"] = round(1e3 * max(0.0, self.total - sum(self.seconds.values())) / n, 3)
            out["total"] = round(1e3 * self.total / n, 3)
        return out


def run_record(pipeline, wall0: float, written: list[str]) -> dict:
    """run.json's content: inputs, model, options, tiles, per-stage time, throughput, outputs,
    and the scene's scores and quick look when asked for."""
    opts, meta, reader, counts = pipeline.opts, pipeline.meta, pipeline.reader, pipeline.counts
    record = {
        "schema_version": RUN_SCHEMA,
        "inputs": {
            "optical": str(opts.optical),
            "sar": str(opts.sar),
            "size": [reader.width, reader.height],
            "crs": str(reader.opt.crs),
            "resolution_m": reader.opt.grid.res,
            "bands": list(pipeline.norm.optical_bands),
            **reader.inputs_record(),
        },
        "model": {
            "source": meta["source"],
            "backend": meta["backend"],
            "config": meta["model"].get("name"),
            **({"picked_from_report": meta["picked_from_report"]} if "picked_from_report" in meta else {}),
        },
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "workers": pipeline.workers,
        "tiles": {
            "total": len(pipeline.grid),
            "processed": counts["tiles"],
            "skipped_clear": counts["skipped"],
            "resumed_from_row": pipeline.resumed_from,
            "column_bands": len(pipeline.bands),
            **({"resumed_from_band": pipeline.start[0]} if pipeline.resumed_from is not None else {}),
        },
        "latency_s": {k: round(v, 4) for k, v in asdict(pipeline.stages).items()},
        "latency_ms_per_tile": {k: round(1e3 * v / max(counts["tiles"], 1), 3) for k, v in asdict(pipeline.stages).items()},
        "cpu_ms_per_tile": pipeline.cpu.per_tile_ms(counts["tiles"]),
        "wall_s": round(time.perf_counter() - wall0, 3),
        "outputs": written,
    }
    record["tiles_per_s"] = round(counts["tiles"] / max(record["wall_s"], 1e-9), 3)
    from ..contract import SHIPPED_ON_REAL_DATA, is_shipped
    from ..data.scenes import is_synthetic_raster

    record["warnings"] = (
        [SHIPPED_ON_REAL_DATA]
        if is_shipped(meta.get("checkpoint_sha256")) and not is_synthetic_raster(reader.optical_input.files[0].path)
        else []
    )
    if opts.reference or opts.labels:
        from .scene_metrics import score_outputs

        segments = "classes" in pipeline.layers  # labels score nothing of a model without classes
        record["accuracy"] = score_outputs(pipeline.out, opts, reader, pipeline.norm, len(meta["classes"]), segments)
    if opts.quicklook:
        from ..report.quicklook import scene_quicklook

        scene_quicklook(pipeline.out / "quicklook.png", reader, pipeline.out, meta, labels=opts.labels)
    return record
