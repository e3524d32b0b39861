"""CPU latency of one 256 x 256 tile: torch eager FP32, ONNX Runtime FP32, ONNX Runtime
INT8 (Q/DQ), for the tiny and base configs. Goals from the export issue, as ratios
measured in this one run: ORT FP32 >= 1.5x torch eager, ORT INT8 >= 1.8x ORT FP32.

Run: pytest benchmarks/bench_backends.py --benchmark-only
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.synthetic import CLASS_COLORS, CLASS_NAMES
from tdpcr_edge.model import build_model
from tdpcr_edge.train.checkpoint import Checkpoint, default_checkpoint_path, save_checkpoint

from .conftest import RESULTS, record

TILE = 256
SUITE = "bench_backends"
GOALS = {"ort_fp32_over_torch": 1.5, "ort_int8_over_ort_fp32": 1.8}


def _summarise(rows: dict) -> dict:
    out, lines = {}, []
    for config in ("tiny", "base"):
        t = {b: rows.get(f"{config}/{b}", {}).get("median_ms") for b in ("torch-fp32", "ort-fp32", "ort-int8")}
        if None in t.values():
            continue
        r1, r2 = t["torch-fp32"] / t["ort-fp32"], t["ort-fp32"] / t["ort-int8"]
        out[config] = {"ort_fp32_over_torch": r1, "ort_int8_over_ort_fp32": r2}
        lines.append(
            f"{config}: torch {t['torch-fp32']:.1f} ms, ORT FP32 {t['ort-fp32']:.1f} ms ({r1:.2f}x, goal {GOALS['ort_fp32_over_torch']}x: "
            f"{'met' if r1 >= GOALS['ort_fp32_over_torch'] else 'MISSED'}), ORT INT8 {t['ort-int8']:.1f} ms ({r2:.2f}x, goal "
            f"{GOALS['ort_int8_over_ort_fp32']}x: {'met' if r2 >= GOALS['ort_int8_over_ort_fp32'] else 'MISSED'})"
        )
    return {"ratios": out, "goals": GOALS, "lines": lines}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """Artifacts for both configs: the shipped tiny checkpoint, and an untrained base
    (latency does not depend on the weights' values)."""
    from tdpcr_edge.export import ExportOptions, run_export

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    base = build_model("base")
    base_ckpt = root / "base.pt"
    save_checkpoint(base_ckpt, Checkpoint(base.config, {}, Normalization(), list(CLASS_NAMES), list(CLASS_COLORS)), base)
    out = {}
    for config, ckpt in (("tiny", default_checkpoint_path()), ("base", base_ckpt)):
        for precision in ("fp32", "int8"):
            path = root / f"{config}-{precision}"
            run_export(ExportOptions(out=path, precision=precision, checkpoint=ckpt, tile=TILE, eval_tiles=2, calib_tiles=8, allow_drift=True))
            out[(config, precision)] = path
    RESULTS.setdefault(SUITE, {"rows": {}})
    RESULTS[SUITE]["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"one 1x13x{TILE}x{TILE} tile (+ SAR), batch 1, {os.cpu_count()} threads for torch and ORT, "
        "pytest-benchmark pedantic: 3 warm-up rounds, then 20 rounds; latency is the runner's infer() "
        "including numpy I/O and padding; median reported"
    )
    return out


def _runner(artifacts, config, backend):
    from tdpcr_edge.runtime import load_runner

    torch.set_num_threads(os.cpu_count())
    precision = "int8" if backend == "ort-int8" else "fp32"
    return load_runner(artifacts[(config, precision)], backend="torch" if backend == "torch-fp32" else "ort")


@pytest.mark.parametrize("backend", ["torch-fp32", "ort-fp32", "ort-int8"])
@pytest.mark.parametrize("config", ["tiny", "base"])
def test_backend_latency(benchmark, artifacts, config, backend):
    rng = np.random.default_rng(0)
    optical = rng.random((1, 13, TILE, TILE), dtype=np.float32)
    sar = rng.random((1, 2, TILE, TILE), dtype=np.float32)
    runner = _runner(artifacts, config, backend).activate()
    out = benchmark.pedantic(runner.infer, args=(optical, sar), rounds=20, warmup_rounds=3, iterations=1)
    assert out["reconstruction"].shape == (1, 13, TILE, TILE)
    s = benchmark.stats.stats
    record(SUITE, f"{config}/{backend}", {"median_ms": s.median * 1e3, "mean_ms": s.mean * 1e3, "stddev_ms": s.stddev * 1e3, "rounds": s.rounds},
           model_mb=sum(f.stat().st_size for f in Path(artifacts[(config, 'int8' if backend == 'ort-int8' else 'fp32')]).glob('model.onnx')) / 2**20)
