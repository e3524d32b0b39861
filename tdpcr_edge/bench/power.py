"""Board power from Jetson's ``tegrastats``, sampled while a benchmark runs.

tegrastats prints one line per interval with rails as ``NAME <now>mW/<average>mW``
(JetPack 5 and later; older boards print ``NAME <now>/<average>`` in mW). The whole board's
input rail is ``VDD_IN`` on Orin (``POM_5V_IN`` on Xavier and Nano); its mean over the run,
times the time per tile, is the energy per tile.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]+) (\d+)(?:mW)?/(\d+)(?:mW)?\b")


def parse_rails(line: str) -> dict[str, int]:
    """The instantaneous milliwatts of every rail on one tegrastats line."""
    return {name: int(now) for name, now, _avg in _RAIL.findall(line)}


def input_power_mw(line: str) -> int | None:
    rails = parse_rails(line)
    return next((rails[r] for r in INPUT_RAILS if r in rails), None)


class TegraStats:
    """Context manager: runs ``tegrastats --interval MS`` and collects the input-rail
    power. ``available`` is False (and nothing runs) where tegrastats is not on PATH."""

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats"):
        self.path = shutil.which(command)
        self.interval_ms = interval_ms
        self.samples: list[int] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.path is not None

    def _read(self) -> None:
        for line in self._proc.stdout:
            mw = input_power_mw(line)
            if mw is not None:
                self.samples.append(mw)

    def __enter__(self) -> "TegraStats":
        if self.available:
            self._proc = subprocess.Popen(
                [self.path, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._thread.join(timeout=5)

    @property
    def mean_power_w(self) -> float | None:
        return sum(self.samples) / len(self.samples) / 1000.0 if self.samples else None
