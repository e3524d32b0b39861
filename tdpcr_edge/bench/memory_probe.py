"""The peak resident memory one bench row adds, measured in a process of its own."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..backends import registry as backends
from ..data.scenes import SceneArrays
from ..errors import RunFailed
from .matrix import Combo, make_runner


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _probe_memory(spec_path: str) -> None:
    """The child of ``peak_memory_mb``: the resident memory (MB) one runner adds at its peak,
    from before it is created to after its calls, printed as JSON. Every installed backend's
    libraries (torch and the model code included) are imported first, so no row is charged
    for a library's code: the figure is what the call needs."""
    import importlib

    for b in backends.REGISTRY.values():
        if b.reads in ("artifact", "checkpoint") and not b.missing():
            for mod in b.requires:
                importlib.import_module(mod)
    if not backends.first_reading("checkpoint").missing():
        importlib.import_module("tdpcr_edge.train.checkpoint")
    spec = json.loads(Path(spec_path).read_text())
    if spec["combo"]["backend"] not in backends.REGISTRY:  # registered at run time in the parent (a plug-in, a test's toy)
        row = spec["backend_row"]
        backends.register(
            backends.Backend(
                **{
                    k: tuple(map(tuple, v)) if k in ("rows", "extra_rows") and v is not None else tuple(v) if isinstance(v, list) else v
                    for k, v in row.items()
                }
            )
        )
    with np.load(spec["tile"]) as z:
        optical, sar = z["optical"], z["sar"]
    path = lambda k: Path(spec[k]) if spec[k] else None  # noqa: E731
    before = _status_kb("VmRSS")
    runner = make_runner(Combo(**spec["combo"]), path("checkpoint"), path("artifact"), path("engine")).activate()
    for _ in range(spec["calls"]):
        runner(optical, sar)
    print(json.dumps({"peak_mem_mb": max(0, _status_kb("VmHWM") - before) / 1024}))


def peak_memory_mb(
    combo: Combo, checkpoint: Path | None, artifact: Path | None, engine: Path | None, tile: SceneArrays, calls: int = 3
) -> float | None:
    """Peak resident memory a CPU row adds, measured in a process of its own: in this one,
    memory freed by earlier rows stays mapped (and glibc is told to keep it, backends/malloc.py),
    so later rows' growth read next to nothing whatever they needed (docs/benchmarks.md).
    None where /proc is missing, and for torch.compile, whose compiler's own memory would be
    all the figure said."""
    if not Path("/proc/self/status").exists() or combo.variant == "compile":
        return None
    with tempfile.TemporaryDirectory(prefix="tdpcr-mem-") as tmp:
        np.savez(Path(tmp) / "tile.npz", optical=tile.optical[None], sar=tile.sar[None])
        spec = {
            "combo": dataclasses.asdict(combo),
            "backend_row": dataclasses.asdict(backends.get(combo.backend)),
            "checkpoint": str(checkpoint or ""),
            "artifact": str(artifact or ""),
            "engine": str(engine or ""),
            "tile": str(Path(tmp) / "tile.npz"),
            "calls": calls,
        }
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        code = f"from tdpcr_edge.bench.memory_probe import _probe_memory; _probe_memory({str(Path(tmp) / 'spec.json')!r})"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"memory probe of {combo.name} failed: {last}; rerun with --skip {combo.name}")
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mem_mb"]
