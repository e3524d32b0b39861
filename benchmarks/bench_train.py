"""The training data pipeline against the training step, and (on a GPU) FP32 against AMP.

CPU goal from the training issue, measured in this one run: the data pipeline reading
GeoTIFFs (a SEN12MS-CR-layout fixture of 256 x 256 patches, random crops of 128 with
flips and rotations, micro-batches of 8) with 2 loader workers delivers >= 1.5x the samples
per second the training step consumes (phase 1, tiny model, the same batches; the step's
rate is its samples over the step time less the time it waited for data). The pipeline
rows read alone (0 and 2 workers); the train rows run `train` end to end and report the
share of step time spent waiting on data.

GPU goals (skipped without CUDA): steps/s with AMP bf16 >= 1.5x FP32, and the step waiting
on data for < 10% of its time (the host's time in the loader, with 4 workers).

Run: pytest benchmarks/bench_train.py --benchmark-only
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from tdpcr_edge.data.sources import DatasetSource
from tdpcr_edge.data.specs import open_dataset
from tdpcr_edge.train import TrainOptions, train
from tdpcr_edge.train.samples import MicroBatches, SampleStream, loader
from tests.data import fixtures

from .conftest import RESULTS, record

SUITE = "bench_train"
PATCHES, SIZE, PATCH, BATCH = 24, 256, 128, 8
PIPELINE_BATCHES, TRAIN_STEPS = 24, 12
GOALS = {"pipeline_over_step": 1.5, "gpu_bf16_over_fp32": 1.5, "gpu_data_wait_max": 0.10}


def _summarise(rows: dict) -> dict:
    lines, ratios = [], {}
    step = rows.get("train/cpu-workers2")
    pipe = rows.get("pipeline/workers2")
    if step and pipe:
        r = pipe["samples_per_s"] / step["step_samples_per_s"]
        ratios["pipeline_over_step"] = r
        lines.append(
            f"pipeline with 2 workers {pipe['samples_per_s']:.1f} samples/s (0 workers "
            f"{rows.get('pipeline/workers0', {}).get('samples_per_s', float('nan')):.1f}) "
            f"against the step's {step['step_samples_per_s']:.1f} samples/s = {r:.1f}x (goal >= {GOALS['pipeline_over_step']}: "
            f"{'met' if r >= GOALS['pipeline_over_step'] else 'MISSED'}); training waited on data {100 * step['data_wait_share']:.1f}% "
            f"of step time with 2 workers, {100 * rows.get('train/cpu-workers0', {}).get('data_wait_share', float('nan')):.1f}% with none"
        )
    fp32, bf16 = rows.get("train/cuda-fp32"), rows.get("train/cuda-bf16")
    if fp32 and bf16:
        r = bf16["steps_per_s"] / fp32["steps_per_s"]
        ratios["gpu_bf16_over_fp32"] = r
        lines.append(
            f"GPU: AMP bf16 {bf16['steps_per_s']:.2f} steps/s against FP32 {fp32['steps_per_s']:.2f} = {r:.2f}x "
            f"(goal >= {GOALS['gpu_bf16_over_fp32']}); data wait {100 * bf16['data_wait_share']:.1f}% (goal < 10%)"
        )
    return {"ratios": ratios, "goals": GOALS, "lines": lines}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-bench") / "sen12mscr"
    # One training scene of the fall season (not in the official val/test lists), and the
    # official val scene so that validation has its split.
    fixtures.sen12mscr(root, size=SIZE, layout={"ROIs1970_fall": {"3": list(range(1, PATCHES + 1))}, "ROIs2017_winter": {"22": [5]}})
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"SEN12MS-CR-layout fixture of {PATCHES} training patches of {SIZE}x{SIZE} (13 + 13 + 2 bands + land cover, GeoTIFF), "
        f"random crops of {PATCH}, flips and rotations, batches of {BATCH}; tiny model, phase 1; {os.cpu_count()} cores; "
        f"pipeline rows: {PIPELINE_BATCHES} batches read alone after the first; train rows: {TRAIN_STEPS} steps of `train` "
        "end to end, step rate = samples / (step time - data wait); one run each"
    )
    return f"sen12mscr:{root}?labels=dfc"


@pytest.mark.parametrize("workers", [0, 2])
def test_pipeline_samples_per_s(benchmark, data, workers):
    source = DatasetSource(open_dataset(data, split="train"), seed=0)
    stream = SampleStream(source, 1, BATCH, PATCH, 0)

    def read() -> float:
        it = iter(loader(stream, MicroBatches(0, PIPELINE_BATCHES + 1, BATCH, 0, 1, 1), workers))
        next(it)  # worker start-up apart
        t0 = time.perf_counter()
        n = sum(b["optical"].shape[0] for b in it)
        return n / (time.perf_counter() - t0)

    rate = benchmark.pedantic(read, rounds=1, iterations=1)
    record(SUITE, f"pipeline/workers{workers}", {"samples_per_s": rate, "workers": workers, "batches": PIPELINE_BATCHES})


def _train_row(tmp_path, data: str, device: str, amp: str, workers: int, steps: int, batch: int, patch: int) -> dict:
    metrics = train(
        TrainOptions(
            out=tmp_path / f"{device}-{amp}-{workers}",
            data=data,
            phase="1",
            steps=steps,
            batch=batch,
            patch=patch,
            save_every=steps,
            device=device,
            amp=amp,
            workers=workers,
            val_scenes=1,
        )
    )
    rec = metrics["phases"]["1"]
    compute = rec["seconds"] - rec["data_wait_s"]
    return {
        "steps_per_s": steps / rec["seconds"],
        "samples_per_s": rec["samples"] / rec["seconds"],
        "step_samples_per_s": rec["samples"] / compute,
        "data_wait_share": rec["data_wait_s"] / rec["seconds"],
        "workers": workers,
        "amp": amp,
        "batch": batch,
        "patch": patch,
        "steps": steps,
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_train_on_cpu(benchmark, data, tmp_path, workers):
    row = benchmark.pedantic(_train_row, args=(tmp_path, data, "cpu", "off", workers, TRAIN_STEPS, BATCH, PATCH), rounds=1, iterations=1)
    record(SUITE, f"train/cpu-workers{workers}", row)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_train_on_gpu(benchmark, data, tmp_path, amp):
    row = benchmark.pedantic(
        _train_row, args=(tmp_path, data, "cuda", "off" if amp == "fp32" else "bf16", 4, 60, 32, 256), rounds=1, iterations=1
    )
    record(SUITE, f"train/cuda-{amp}", {**row, "gpu": torch.cuda.get_device_name()})
