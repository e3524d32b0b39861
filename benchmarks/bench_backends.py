"""CPU latency of one 256 x 256 tile for every CPU row: torch eager FP32, torch.compile FP32
(compilation timed apart), ONNX Runtime FP32 and INT8, OpenVINO on the FP32 artifact with its
own defaults, OpenVINO f32, BF16 (where the CPU computes it natively) and INT8; for the tiny
(shipped, trained) and base (untrained: latency only) configs.

Goals from the CPU-deployment issue, as ratios measured in this one run on the tiny model:
the fastest row within the drift budget (its own drift against torch FP32 on the 16 held-out
tiles exports are gated on) >= 4x torch eager FP32 and >= 1.0x every peer (torch.compile,
ONNX Runtime FP32, OpenVINO on the FP32 artifact with default settings); OpenVINO INT8 >= 1.8x
OpenVINO f32; ONNX Runtime INT8 >= 1.3x ONNX Runtime FP32. INT8 artifacts are the x86-cpu
profile's (UINT8 activations where non-negative); ``tensorrt`` rows time TensorRT's placement
(symmetric INT8) on the same runtimes, for comparison.

Run: pytest benchmarks/bench_backends.py --benchmark-only
(set ONEDNN_MAX_CPU_ISA=AVX2 to see what an AVX2-only CPU gets from torch and OpenVINO;
ONNX Runtime's own kernels ignore it.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tdpcr_edge import precisions
from tdpcr_edge.bench.matrix import select, unavailable
from tdpcr_edge.contract import default_checkpoint_path
from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.synthetic import CLASS_COLORS, CLASS_NAMES
from tdpcr_edge.model import build_model
from tdpcr_edge.train.checkpoint import Checkpoint, save_checkpoint

from .conftest import RESULTS, record

TILE = 256
SUITE = "bench_backends"
GOALS = {"fastest_over_torch": 4.0, "fastest_over_peers": 1.0, "ov_int8_over_ov_f32": 1.8, "ort_int8_over_ort_fp32": 1.3}


def _rows() -> dict:
    """The registry's CPU rows at the precisions this suite exports (fp32, int8; bf16 runs the
    FP32 artifact computed in BF16), plus, for INT8 artifact rows, TensorRT's placement
    (symmetric INT8) on the same runtime: {name: (combo, artifact, runner options)}."""
    rows = {}
    for c in select(None, "fp32,bf16,int8"):
        if c.device != "cpu" or c.variant == "nncf":  # NNCF's peer row: bench_alone and bench run it
            continue
        name = c.name.removesuffix("-cpu").replace("-eager", "")
        options = {"inference_precision": precisions.get("bf16").inference_precision(c.backend)} if c.precision == "bf16" else {}
        rows[name] = (c, "fp32" if c.precision == "bf16" else c.precision, options)
        if c.precision == "int8" and c.needs_artifact:
            rows[name + "-tensorrt"] = (c, "int8-trt", {})
    return rows


ROWS = _rows()
PEERS = ("torch-fp32-compile", "ort-fp32", "openvino-fp32-default")


def _summarise(rows: dict) -> dict:
    out, lines = {}, []
    for config in ("tiny", "base"):
        t = {name: rows[f"{config}/{name}"]["median_ms"] for name in ROWS if f"{config}/{name}" in rows}
        if "torch-fp32" not in t:
            continue
        ratios = {}
        # Ours to deploy: not a compiler's row, nor OpenVINO's untouched defaults.
        within = [n for n in t if rows[f"{config}/{n}"].get("within_budget") and n not in ("torch-fp32-compile", "openvino-fp32-default")]
        if within:
            fastest = min(within, key=t.get)
            ratios["fastest_within_budget"] = fastest
            ratios["fastest_over_torch"] = t["torch-fp32"] / t[fastest]
            ratios["fastest_over_peers"] = min(t[p] / t[fastest] for p in PEERS if p in t)
        if "openvino-int8" in t and "openvino-fp32" in t:
            ratios["ov_int8_over_ov_f32"] = t["openvino-fp32"] / t["openvino-int8"]
        if "ort-int8" in t and "ort-fp32" in t:
            ratios["ort_int8_over_ort_fp32"] = t["ort-fp32"] / t["ort-int8"]
        out[config] = ratios
        compile_s = rows.get(f"{config}/torch-fp32-compile", {}).get("compile_s")
        lines.append(
            f"{config}: "
            + ", ".join(f"{n} {v:.1f} ms" for n, v in t.items())
            + (f"; torch.compile took {compile_s:.0f} s to compile" if compile_s else "")
        )
        for key, goal in GOALS.items():
            if key in ratios:
                lines.append(
                    f"  {config} {key}: {ratios[key]:.2f}x (goal {goal}x: {'met' if ratios[key] >= goal else 'MISSED'})"
                    + (f" [{ratios['fastest_within_budget']}]" if key.startswith("fastest") else "")
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
        for name, precision, placement in (("fp32", "fp32", None), ("int8", "int8", "cpu"), ("int8-trt", "int8", "tensorrt")):
            path = root / f"{config}-{name}"
            run_export(
                ExportOptions(
                    out=path,
                    precision=precision,
                    checkpoint=ckpt,
                    tile=TILE,
                    eval_tiles=2,
                    calib_tiles=16,
                    int8_placement=placement,
                    allow_drift=True,
                )
            )
            out[(config, name)] = path
    RESULTS.setdefault(SUITE, {"rows": {}})
    RESULTS[SUITE]["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"one 1x13x{TILE}x{TILE} tile (+ SAR), batch 1, {os.cpu_count()} threads for torch, ONNX Runtime and OpenVINO (latency hint), "
        "pytest-benchmark pedantic: 3 warm-up rounds, then 20 rounds; latency is the runner's infer() including numpy I/O and padding; "
        "median reported. Drift (tiny only): each row against torch FP32 on the 16 held-out tiles of the export gate (seed 9001), "
        "budget |dPSNR| <= 0.3 dB and |dmIoU| <= 1 point. INT8 artifacts: the x86-cpu placement (UINT8 activations where non-negative) "
        "unless named -tensorrt. torch.compile's compilation is its first call, timed apart"
    )
    return out


@pytest.fixture(scope="module")
def drift_tiles():
    from tdpcr_edge.backends.torch_runner import TorchRunner
    from tdpcr_edge.export.heldout import DRIFT_SEED, tiles_from
    from tdpcr_edge.train.checkpoint import load_checkpoint

    ck = load_checkpoint(None)
    tiles = tiles_from("synthetic", 16, TILE, ck.normalization, ck.config.num_classes, DRIFT_SEED)
    return {"tiles": tiles, "reference": TorchRunner(ck.path), "cache": None, "classes": ck.config.num_classes}


@pytest.mark.parametrize("row", list(ROWS))
@pytest.mark.parametrize("config", ["tiny", "base"])
def test_backend_latency(benchmark, artifacts, drift_tiles, config, row):
    from tdpcr_edge.backends import load_runner
    from tdpcr_edge.drift import measure_drift, over_budget, parse_budget

    combo, name, options = ROWS[row]
    reason = unavailable(combo)
    if reason:
        pytest.skip(reason)
    torch.set_num_threads(os.cpu_count())
    runner = load_runner(artifacts[(config, name)], backend=combo.backend, variant=combo.variant, device=combo.device, **options)
    rng = np.random.default_rng(0)
    optical = rng.random((1, 13, TILE, TILE), dtype=np.float32)
    sar = rng.random((1, 2, TILE, TILE), dtype=np.float32)
    t0 = time.perf_counter()
    runner.activate()
    runner.infer(optical, sar)
    first_s = time.perf_counter() - t0
    out = benchmark.pedantic(runner.infer, args=(optical, sar), rounds=20, warmup_rounds=3, iterations=1)
    assert out["reconstruction"].shape == (1, 13, TILE, TILE)
    s = benchmark.stats.stats
    extra = {"model_mb": (Path(artifacts[(config, name)]) / "model.onnx").stat().st_size / 2**20, "first_call_s": first_s}
    if row == "torch-fp32-compile":
        extra["compile_s"] = first_s
    if config == "tiny":
        d = drift_tiles
        drift, d["cache"] = measure_drift(d["reference"], runner, d["tiles"], d["classes"], d["cache"])
        extra.update(
            psnr_delta=drift["psnr_delta"], miou_delta=drift["miou_delta"], within_budget=not over_budget(drift, parse_budget(None))
        )
    record(
        SUITE,
        f"{config}/{row}",
        {"median_ms": s.median * 1e3, "mean_ms": s.mean * 1e3, "stddev_ms": s.stddev * 1e3, "rounds": s.rounds},
        **extra,
    )
