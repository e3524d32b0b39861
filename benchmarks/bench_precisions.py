"""Accuracy against latency for every row of the backend/precision registry
(``tdpcr_edge.bench.matrix``), the pytest-benchmark way: each row is scored on the same
held-out tiles (accuracy and drift against torch FP32 in ``extra_info``) and timed by
pytest-benchmark on them. Rows this machine cannot run (CUDA, TensorRT) skip with the reason.

    pytest benchmarks/bench_precisions.py --benchmark-only --benchmark-json bench.json
    tdpcr-edge report bench.json --report DIR      # the same report `tdpcr-edge bench` writes

TDPCR_BENCH_ARTIFACTS=demo-out/artifacts reuses artifacts exported before (matching checkpoint and tile).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tdpcr_edge.backends.torch_runner import TorchRunner
from tdpcr_edge.bench.artifacts import artifact_key, artifact_keys, ensure_artifacts, ensure_engine
from tdpcr_edge.bench.matrix import COMBOS, make_runner, unavailable
from tdpcr_edge.bench.options import BenchOptions
from tdpcr_edge.bench.row import accuracy_fields
from tdpcr_edge.bench.run import method_text
from tdpcr_edge.drift import measure_drift, over_budget, parse_budget
from tdpcr_edge.export.heldout import DRIFT_SEED, tiles_from
from tdpcr_edge.probe import device_info
from tdpcr_edge.train.checkpoint import load_checkpoint

TILE, TILES, WARMUP, ROUNDS = 256, 8, 3, 20


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("precisions")
    # Artifacts already exported (e.g. by make demo) are reused when they match the shipped
    # checkpoint and tile; anything missing is exported into that folder.
    artifacts = os.environ.get("TDPCR_BENCH_ARTIFACTS")
    opts = BenchOptions(
        report=root, tiles=TILES, tile=TILE, warmup=WARMUP, iterations=ROUNDS, artifacts=Path(artifacts) if artifacts else None
    )
    ckpt = load_checkpoint(None)
    tiles = tiles_from("synthetic", TILES, TILE, ckpt.normalization, ckpt.config.num_classes, DRIFT_SEED)
    needed = artifact_keys([c for c in COMBOS if not unavailable(c)])
    artifacts, _ = ensure_artifacts(opts, needed, lambda name: None)
    torch.set_num_threads(os.cpu_count())
    return {"opts": opts, "ckpt": ckpt, "tiles": tiles, "artifacts": artifacts, "reference": TorchRunner(ckpt.path), "cache": {}}


@pytest.mark.parametrize("combo", COMBOS, ids=[c.name for c in COMBOS])
def test_precision_row(benchmark, setup, combo):
    reason = unavailable(combo)
    if reason:
        pytest.skip(reason)
    ckpt, tiles = setup["ckpt"], setup["tiles"]
    artifact = setup["artifacts"].get(artifact_key(combo)) if combo.needs_artifact else None
    engine = ensure_engine(artifact, setup["opts"].report / "engines", combo.precision) if combo.backend == "trt" else None
    runner = make_runner(combo, ckpt.path, artifact, engine).activate()
    drift, setup["cache"]["ref"] = measure_drift(setup["reference"], runner, tiles, ckpt.config.num_classes, setup["cache"].get("ref"))
    it = iter(range(10**9))

    def one_tile():
        t = tiles[next(it) % len(tiles)]
        out = runner(t.optical[None], t.sar[None])
        if combo.device == "cuda":
            torch.cuda.synchronize()
        return out

    out = benchmark.pedantic(one_tile, rounds=ROUNDS, warmup_rounds=WARMUP, iterations=1)
    assert out["reconstruction"].shape == (1, ckpt.config.optical_bands, TILE, TILE)
    benchmark.extra_info.update(accuracy_fields(combo, drift, ckpt.path, artifact, engine))
    benchmark.extra_info["within_budget"] = not over_budget(drift, parse_budget(None))
    benchmark.extra_info["method"] = method_text(setup["opts"], len(tiles), timer="pytest-benchmark pedantic")
    benchmark.extra_info["device_info"] = device_info()
