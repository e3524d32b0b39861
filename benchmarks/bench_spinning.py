"""Idle thread pools beside the scene stream: ONNX Runtime with its intra-op threads spinning
between calls (its own default) and sleeping (ours), on a 2048 x 2048 scene; and, for every
CPU backend, the CPU its threads burn while idle right after a call.

The stream's reader, blender and writer threads share the cores with the inference calls. A
pool that spins after each call holds cores those threads need. Which setting streams faster
decides ``runtime.ort_runner.SPIN_BETWEEN_CALLS``. ONNX Runtime's pool has threads beyond
the caller only when a session has more than one intra-op thread: with the stream's default
workers on 2 cores (two single-threaded sessions) it has none, so one worker (one session on
both cores, as each of two workers has on a 4-core CPU) is measured too. OpenVINO and torch
expose no switch here: their idle CPU is reported.

Run: pytest benchmarks/bench_spinning.py --benchmark-only -s
"""

from __future__ import annotations

import numpy as np
import pytest

from tdpcr_edge.backends import load_runner, ort_runner
from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.stream import StreamOptions, default_workers, run_stream

from .bench_alone import idle_cores
from .conftest import RESULTS, record

SUITE = "bench_spinning"
SIZE, TILE, OVERLAP, BATCH, ROUNDS = 2048, 256, 32, 4, 3
IDLE_S = (0.005, 0.05, 0.25)


def _summarise(rows: dict) -> dict:
    out, lines = {}, []
    for workers in sorted({r["workers"] for r in rows.values() if "workers" in r}):
        on, off = rows.get(f"stream/spin/{workers}"), rows.get(f"stream/nospin/{workers}")
        if on and off:
            ratio = off["tiles_per_s"] / on["tiles_per_s"]
            out[f"nospin_over_spin_{workers}_workers"] = ratio
            lines.append(
                f"ONNX Runtime stream, {workers} worker(s): spinning {on['tiles_per_s']:.1f} tiles/s, sleeping {off['tiles_per_s']:.1f} "
                f"tiles/s: {ratio:.2f}x ({'sleeping' if ratio >= 1 else 'spinning'} faster; rounds {on['rounds']} / {off['rounds']})"
            )
    for key, r in rows.items():
        if key.startswith("idle/"):
            lines.append(
                f"{key.removeprefix('idle/')}: cores busy while idle after a call, over "
                + ", ".join(f"{s * 1e3:.0f} ms {c:.2f}" for s, c in zip(IDLE_S, r["cores_busy"]))
            )
    return {"ratios": out, "lines": lines}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tdpcr_edge.export import ExportOptions, run_export

    root = tmp_path_factory.mktemp("spin")
    write_scene(root / "scene", make_scene(11, 0, SIZE))
    run_export(ExportOptions(out=root / "fp32", precision="fp32", calib_tiles=4, eval_tiles=2))
    RESULTS.setdefault(SUITE, {"rows": {}})["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"shipped tiny model, FP32 artifact on ONNX Runtime; a {SIZE} x {SIZE} synthetic scene, tile {TILE}, overlap {OVERLAP}, batch "
        f"{BATCH}; "
        f"spinning and sleeping alternated run by run, {ROUNDS} rounds each, median tiles/s of the whole run; idle: the process's "
        "user+system "
        "CPU time while sleeping right after a call, divided by the sleep"
    )
    return root


@pytest.mark.parametrize("workers", sorted({1, default_workers()}))
def test_ort_stream_spinning(benchmark, setup, tmp_path, monkeypatch, workers):
    scene = setup / "scene"
    runs: dict[bool, list[float]] = {True: [], False: []}

    def one_round():
        for spin in (True, False):
            monkeypatch.setattr(ort_runner, "SPIN_BETWEEN_CALLS", spin)
            out = tmp_path / f"out-{spin}-{len(runs[spin])}"
            run = run_stream(
                StreamOptions(
                    optical=scene / FILES["optical"],
                    sar=scene / FILES["sar"],
                    out=out,
                    model=str(setup / "fp32"),
                    backend="ort",
                    tile=TILE,
                    overlap=OVERLAP,
                    batch=BATCH,
                    quicklook=False,
                    workers=workers,
                )
            )
            runs[spin].append(run["tiles_per_s"])

    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=0, iterations=1)
    for spin, name in ((True, "spin"), (False, "nospin")):
        record(
            SUITE,
            f"stream/{name}/{workers}",
            {"tiles_per_s": float(np.median(runs[spin])), "rounds": [round(x, 2) for x in runs[spin]], "workers": workers},
        )
    assert all(len(v) == ROUNDS for v in runs.values())


@pytest.mark.parametrize("row", ["ort-spinning", "ort", "openvino", "openvino-default", "torch"])
def test_idle_cpu_after_a_call(benchmark, setup, row):
    import os

    import torch

    torch.set_num_threads(os.cpu_count())
    if row == "torch":
        runner = load_runner(None, backend="torch")
    elif row.startswith("ort"):
        runner = load_runner(setup / "fp32", backend="ort", spinning=row == "ort-spinning")
    else:
        runner = load_runner(setup / "fp32", backend="openvino", variant="default" if row.endswith("default") else "")
    rng = np.random.default_rng(0)
    optical, sar = rng.random((1, 13, TILE, TILE), dtype=np.float32), rng.random((1, 2, TILE, TILE), dtype=np.float32)
    benchmark.pedantic(runner, args=(optical, sar), rounds=5, warmup_rounds=2, iterations=1)
    busy = [idle_cores(lambda: runner(optical, sar), sleep) for sleep in IDLE_S]
    record(SUITE, f"idle/{row}", {"cores_busy": [round(b, 3) for b in busy]})
    assert len(busy) == len(IDLE_S)
