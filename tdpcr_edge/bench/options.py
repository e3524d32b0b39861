"""What a bench run is asked for: ``tdpcr-edge bench``'s options, taken by ``bench.run_bench``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .timing import DEFAULT_ROUNDS


@dataclass
class BenchOptions:
    report: Path
    checkpoint: Path | None = None
    # Several models in one report, their rows timed together (``checkpoint`` is then unused).
    checkpoints: tuple[Path, ...] = ()
    backends: str | None = None  # comma-separated; None: every registered backend
    precisions: str | None = None  # comma-separated; None: every registered precision
    data: str = "synthetic"
    tiles: int = 16
    tile: int = 256
    warmup: int = 3
    iterations: int = 20
    rounds: int = DEFAULT_ROUNDS  # blocks per row, rotated (timing.time_rows)
    artifacts: Path | None = None  # default: REPORT/artifacts
    engines: Path | None = None  # default: REPORT/engines
    calib: str = "synthetic"
    calib_tiles: int = 32  # for the exports bench makes
    eval_tiles: int = 16  # the exports' own drift gate
    target: str | None = None  # the exports' target profile (x86-cpu: CPU INT8 placement, drift on OpenVINO)
    drift_budget: str | None = None  # every row is marked against it (default psnr=0.3,miou=1.0)
    skip: str = ""  # registry rows to leave out, by name (e.g. torch-fp32-compile-cpu: 35 s of compilation)

    def models(self) -> list[Path | None]:
        """The checkpoints benched (None: the shipped one)."""
        return list(self.checkpoints) or [self.checkpoint]
