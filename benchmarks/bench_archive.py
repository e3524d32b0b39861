"""An archive in this process against the same archive on Ray (CPU, shipped model, torch).

Goal from the archive issue, measured in this one run: 8 scenes of 1024 x 1024, Ray with 2
single-threaded actors >= 0.9x the in-process throughput (tiles per second after start-up;
Ray's start-up, the actors' model loads included, reported apart). In-process runs the
scenes one after another, each split between two single-threaded inference workers (the
stream's default on 2 cores); on Ray each actor streams its own scene on one core.

Run: pytest benchmarks/bench_archive.py --benchmark-only
"""

from __future__ import annotations

import os

import pytest

from tdpcr_edge.archive.job import ArchiveOptions
from tdpcr_edge.archive.run import run_archive
from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import make_scene

from .conftest import RESULTS, record

SUITE = "bench_archive"
SCENES, SIZE = 8, 1024
GOAL = 0.9


def _summarise(rows: dict) -> dict:
    lines, ratios = [], {}
    if "in-process" in rows and "ray" in rows:
        r = rows["ray"]["tiles_per_s"] / rows["in-process"]["tiles_per_s"]
        ratios["ray_over_in_process"] = r
        lines.append(
            f"{SCENES} scenes of {SIZE}^2: in-process {rows['in-process']['tiles_per_s']:.2f} tiles/s, Ray ({rows['ray']['workers']} "
            "actors) "
            f"{rows['ray']['tiles_per_s']:.2f} tiles/s = {r:.2f}x (goal >= {GOAL}: {'met' if r >= GOAL else 'MISSED'}); "
            f"start-up apart: in-process {rows['in-process']['startup_s']:.1f} s, Ray {rows['ray']['startup_s']:.1f} s"
        )
    return {"ratios": ratios, "goals": {"ray_over_in_process": GOAL}, "lines": lines}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive-bench")
    out = []
    for i in range(SCENES):
        folder = write_scene(root / f"s{i}", make_scene(70 + i, 0, SIZE))
        out.append({"name": f"s{i}", "optical": folder / FILES["optical"], "sar": folder / FILES["sar"]})
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"{SCENES} synthetic scenes of {SIZE}x{SIZE}, shipped tiny model, torch backend, tile 256, overlap 32, "
        f"{os.cpu_count()} cores; in-process: one runner, scenes in turn, batches of 4 split between the stream's default 2 workers; Ray: "
        "a fresh local instance, 2 actors of 1 CPU each pulling scenes, batches of 2 (the CLI's defaults); throughput = tiles / the time "
        "the scenes took (start-up and tear-down apart); one run each"
    )
    return out


@pytest.mark.parametrize("engine", ["in-process", "ray"])
def test_archive_throughput(benchmark, jobs, tmp_path, engine):
    if engine == "ray":
        pytest.importorskip("ray", reason="Ray is in the cluster extra (pip install 'tdpcr-edge[cluster]')")
    # Each engine with the CLI's defaults: in-process batches of 4 split between two workers,
    # on Ray batches of 2 per single-CPU worker (the same 2-tile calls).
    opts = ArchiveOptions(
        out=tmp_path / "out",
        stream={"tile": 256, "overlap": 32, "batch": 2 if engine == "ray" else 4, "quicklook": False},
        ray="local" if engine == "ray" else None,
        workers=2 if engine == "ray" else None,
        cpus_per_worker=1,
    )
    summary = benchmark.pedantic(run_archive, args=(jobs, opts), rounds=1, iterations=1)
    assert summary["done"] == SCENES
    record(
        SUITE,
        engine,
        {
            "tiles_per_s": summary["tiles_per_s"],
            "startup_s": summary["startup_s"],
            "wall_s": summary["wall_s"],
            "workers": summary["workers"],
            "tiles": summary["tiles"],
        },
    )
