"""A full Sentinel-2 tile through the stream: 10980 x 10980 pixels, 13 bands (an MGRS tile at
10 m, 12 056 km^2), through the replay backend (the pipeline alone) and through the fastest
CPU row (the x86-cpu profile's artifact on OpenVINO). Wall time, tiles/s, km^2/s, peak
resident memory (/usr/bin/time -v of a fresh process) against the same backend's run on the
tile's 2048^2 corner (goal: within 20%), and each stage's CPU share.

The scene is synthesised once, as a 5 x 5 mosaic of 2196^2 synthetic scenes (five scenes,
flipped and transposed), into ``$TDPCR_S2_TILE_DIR`` (default: a folder in the system's temp
directory) and reused by later runs: it takes about a minute and 4 GB of disk.

Run: pytest benchmarks/bench_s2_tile.py --benchmark-only -s
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from tdpcr_edge.bench.matrix import Combo, unavailable
from tdpcr_edge.data.scenes import FILES
from tdpcr_edge.data.synthetic import CRS, PIXEL_SIZE_M, make_scene

from .conftest import RESULTS, record

SUITE = "bench_s2_tile"
SIZE, BLOCK = 10980, 2196  # 5 x 5 blocks
CROP = 2048
RSS_GOAL = 1.2  # peak RSS of the whole tile against its 2048^2 corner's, through the same backend
TILE, OVERLAP, BATCH = 256, 32, 4


def _summarise(rows: dict) -> dict:
    lines = []
    for key, row in rows.items():
        shares = {k: v / row["cpu_ms_per_tile"]["total"] for k, v in row["cpu_ms_per_tile"].items() if k != "total"}
        lines.append(
            f"{key}: {row['wall_s']:.1f} s, {row['tiles_per_s']:.1f} tiles/s, {row['km2_per_s']:.0f} km^2/s, peak RSS "
            f"{row['max_rss_mb']:.0f} MB "
            f"({row['rss_over_2048']:.2f}x the 2048^2 corner's {row['corner_2048']['max_rss_mb']:.0f} MB, goal <= {row['rss_goal']}x: "
            f"{'met' if row['rss_goal_met'] else 'MISSED'}; {row['column_bands']} column bands); "
            "CPU share " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in shares.items())
        )
    return {"lines": lines}


@pytest.fixture(scope="module")
def s2_tile():
    root = Path(os.environ.get("TDPCR_S2_TILE_DIR", Path(tempfile.gettempdir()) / "tdpcr-s2-tile-10980"))
    done = root / "complete"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        scenes = [make_scene(100 + i, 0, BLOCK) for i in range(5)]
        # Tiled like the COGs the catalogues serve (and as `synth` writes its scenes).
        base = dict(
            driver="GTiff",
            width=SIZE,
            height=SIZE,
            crs=CRS,
            transform=from_origin(300000.0, 5000000.0, PIXEL_SIZE_M, PIXEL_SIZE_M),
            compress="deflate",
            tiled=True,
            blockxsize=256,
            blockysize=256,
        )
        opt, sar = dict(base, count=13, dtype="uint16"), dict(base, count=2, dtype="float32")
        with rasterio.open(root / FILES["optical"], "w", **opt) as o, rasterio.open(root / FILES["sar"], "w", **sar) as s:
            for by in range(5):
                for bx in range(5):
                    sc = scenes[(by * 5 + bx) % 5]
                    flip = [
                        lambda a: a,
                        lambda a: a[..., ::-1, :],
                        lambda a: a[..., :, ::-1],
                        lambda a: np.swapaxes(a, -1, -2),
                        lambda a: a[..., ::-1, ::-1],
                    ][(by + 2 * bx) % 5]
                    w = Window(bx * BLOCK, by * BLOCK, BLOCK, BLOCK)
                    o.write(np.ascontiguousarray(flip(sc.optical_cloudy)), window=w)
                    s.write(np.ascontiguousarray(flip(sc.sar)), window=w)
        done.write_text("ok\n")
    crop = root / "crop2048"  # the same pixels' first 2048^2, as the run the big one's memory is held to
    if not (crop / "complete").exists():
        crop.mkdir(exist_ok=True)
        for name in (FILES["optical"], FILES["sar"]):
            with rasterio.open(root / name) as src:
                profile = dict(src.profile, width=CROP, height=CROP, transform=src.window_transform(Window(0, 0, CROP, CROP)))
                with rasterio.open(crop / name, "w", **profile) as dst:
                    dst.write(src.read(window=Window(0, 0, CROP, CROP)))
        (crop / "complete").write_text("ok\n")
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"{SIZE} x {SIZE} x 13-band synthetic scene (5 x 5 mosaic of {BLOCK}^2 scenes, DEFLATE, 256^2 blocks), tile {TILE}, overlap "
        f"{OVERLAP}, "
        f"batch {BATCH}; one `tdpcr-edge infer`-equivalent stream per row in a fresh process under /usr/bin/time -v, after the same row "
        "on the "
        f"tile's {CROP}^2 corner (peak RSS goal <= {RSS_GOAL}x the corner's); "
        f"km^2 at {PIXEL_SIZE_M:g} m pixels"
    )
    return root


def _stream(folder: Path, out: Path, backend: str, model: str | None) -> dict:
    code = (
        "import json\nfrom tdpcr_edge.stream import StreamOptions, run_stream\n"
        f"r = run_stream(StreamOptions(optical={str(folder / FILES['optical'])!r}, sar={str(folder / FILES['sar'])!r}, out={str(out)!r}, "
        f"model={model!r}, "
        f"backend={backend!r}, tile={TILE}, overlap={OVERLAP}, batch={BATCH}, quicklook=False))\n"
        "print(json.dumps(r))"
    )
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code], capture_output=True, text=True, check=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["max_rss_mb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    return run


def _record(key: str, run: dict, corner: dict) -> None:
    km2 = SIZE * SIZE * PIXEL_SIZE_M**2 / 1e6
    record(
        SUITE,
        key,
        {
            "wall_s": run["wall_s"],
            "tiles": run["tiles"]["processed"],
            "tiles_per_s": run["tiles_per_s"],
            "km2_per_s": km2 / run["wall_s"],
            "max_rss_mb": run["max_rss_mb"],
            "sampled_peak_rss_mb": run["peak_rss_mb"],
            "cpu_ms_per_tile": run["cpu_ms_per_tile"],
            "workers": run["workers"],
            "backend": run["model"]["backend"],
            "column_bands": run["tiles"]["column_bands"],
            "corner_2048": {"wall_s": corner["wall_s"], "tiles_per_s": corner["tiles_per_s"], "max_rss_mb": corner["max_rss_mb"]},
            "rss_over_2048": run["max_rss_mb"] / corner["max_rss_mb"],
            "rss_goal": RSS_GOAL,
            "rss_goal_met": run["max_rss_mb"] <= RSS_GOAL * corner["max_rss_mb"],
        },
    )


def _both(root: Path, tmp_path: Path, backend: str, model: str | None, benchmark) -> tuple[dict, dict]:
    """The 2048^2 corner, then the whole tile, each in a fresh process."""
    corner = _stream(root / "crop2048", tmp_path / f"{backend}-2048", backend, model)
    runs = []
    benchmark.pedantic(lambda: runs.append(_stream(root, tmp_path / backend, backend, model)), rounds=1, iterations=1)
    return runs[0], corner


def test_s2_tile_pipeline_alone(benchmark, s2_tile, tmp_path):
    run, corner = _both(s2_tile, tmp_path, "replay", None, benchmark)
    _record("replay", run, corner)
    assert run["tiles"]["processed"] == run["tiles"]["total"]


def test_s2_tile_fastest_cpu_row(benchmark, s2_tile, tmp_path):
    if unavailable(Combo("openvino", "int8")) is not None:
        pytest.skip("openvino is not installed")
    from tdpcr_edge.export import ExportOptions, run_export

    art = tmp_path / "cpu"
    manifest = run_export(ExportOptions(out=art, target="x86-cpu", calib_tiles=16))
    run, corner = _both(s2_tile, tmp_path, "openvino", str(art), benchmark)
    _record(f"openvino {manifest['precision']}", run, corner)
    assert run["tiles"]["processed"] == run["tiles"]["total"]
