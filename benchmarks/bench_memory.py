"""Peak resident memory of the commands that loop over calibration data: `tdpcr-edge export
--precision int8` with 32 and with 128 calibration tiles, and `tdpcr-edge bench` with its
defaults, each in a fresh process under /usr/bin/time -v (Maximum resident set size).

Goals (the device-fit issue): INT8 export <= 1.5 GB with 32 tiles, and with 128 tiles within
10% of the 32-tile figure; bench with defaults <= 2.5 GB.

Run: pytest benchmarks/bench_memory.py --benchmark-only -s
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .conftest import RESULTS, record

SUITE = "bench_memory"
GOALS = {"export_int8_32_mb": 1536, "export_int8_128_over_32": 1.10, "bench_defaults_mb": 2560}


def _summarise(rows: dict) -> dict:
    out, lines = {}, []
    a, b = rows.get("export_int8_32"), rows.get("export_int8_128")
    if a:
        lines.append(
            f"export --precision int8, 32 calibration tiles: {a['max_rss_mb']:.0f} MB in {a['wall_s']:.0f} s "
            f"(goal <= {GOALS['export_int8_32_mb']} MB: {'met' if a['max_rss_mb'] <= GOALS['export_int8_32_mb'] else 'MISSED'})"
        )
    if a and b:
        r = b["max_rss_mb"] / a["max_rss_mb"]
        out["export_int8_128_over_32"] = r
        lines.append(
            f"128 tiles: {b['max_rss_mb']:.0f} MB in {b['wall_s']:.0f} s, {r:.3f}x the 32-tile peak "
            f"(goal <= {GOALS['export_int8_128_over_32']}: {'met' if r <= GOALS['export_int8_128_over_32'] else 'MISSED'})"
        )
    c = rows.get("bench_defaults")
    if c:
        lines.append(
            f"bench with defaults: {c['max_rss_mb']:.0f} MB in {c['wall_s']:.0f} s "
            f"(goal <= {GOALS['bench_defaults_mb']} MB: {'met' if c['max_rss_mb'] <= GOALS['bench_defaults_mb'] else 'MISSED'})"
        )
    return {"ratios": out, "goals": GOALS, "lines": lines}


def _peak(args: list[str]) -> dict:
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "tdpcr_edge.cli", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return {"max_rss_mb": rss, "wall_s": wall}


@pytest.fixture(scope="module", autouse=True)
def suite():
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        "each command in a fresh process under /usr/bin/time -v; shipped checkpoint, defaults otherwise (tile 256, percentile calibration)"
    )


@pytest.mark.parametrize("tiles", [32, 128])
def test_export_int8_peak(benchmark, tmp_path, tiles):
    out = []
    benchmark.pedantic(
        lambda: out.append(_peak(["export", "--precision", "int8", "--calib-tiles", str(tiles), "--out", str(tmp_path / "art")])),
        rounds=1,
        iterations=1,
    )
    record(SUITE, f"export_int8_{tiles}", {**out[0], "calib_tiles": tiles})


def test_bench_defaults_peak(benchmark, tmp_path):
    out = []
    benchmark.pedantic(lambda: out.append(_peak(["bench", "--report", str(tmp_path / "report")])), rounds=1, iterations=1)
    record(SUITE, "bench_defaults", out[0])
