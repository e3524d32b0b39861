"""`tdpcr-edge bench` against every CPU row timed alone, in a fresh process of its own.

The latency issue's goals, as figures of this one run:
- every CPU row's `bench` p50 within 10% of the same runner timed alone;
- rows tied when timed alone are reported as tied by `bench`;
- two `bench` runs in a row name the same fastest row within budget;
- the fastest row within budget, timed alone: >= 1.1x OpenVINO's defaults on our FP32 graph and
  >= 1.8x torch eager on a CPU without VNNI; >= 1.25x and 4x with VNNI or AMX.
Each alone process also reports the CPU time it burns while idle for 250 ms after a call: a
runtime whose threads spin between calls shows it there. Before timing, each alone process runs
its row once on every tile, as `bench` does when it scores the row's drift: torch eager needs
that many calls to reach its steady speed (without them it read 1.2-1.35x slower alone).

The bench runs are `make demo`'s (16 held-out tiles, 12 timed calls, the x86-cpu target on
x86). The artifacts are exported by the first run and reused by the second.

Run: pytest benchmarks/bench_alone.py --benchmark-only -s
(ONEDNN_MAX_CPU_ISA=AVX2 shows what an AVX2-only CPU gets from torch and OpenVINO; ONNX
Runtime's kernels ignore the cap, so bench skips its rows then.)
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tdpcr_edge.probe import cpu_isa

from .conftest import RESULTS, record

SUITE = "bench_alone"
TILES, ITERATIONS, CALIB_TILES = 16, 12, 16
IDLE_S = 0.25


def _goals() -> dict:
    fast_int8 = cpu_isa().int8_dot
    return {
        "bench_over_alone_max_dev": 0.10,
        "fastest_over_ov_default": 1.25 if fast_int8 else 1.1,
        "fastest_over_torch_eager": 4.0 if fast_int8 else 1.8,
    }


def idle_cores(call, sleep_s: float) -> float:
    """The share of the cores this process burns while it sleeps ``sleep_s`` right after
    ``call()``: a runtime whose threads spin between calls shows it here."""
    call()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    time.sleep(sleep_s)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (time.perf_counter() - t0)


def time_alone(spec: dict) -> dict:
    """The child: one row's runner in this fresh process, timed as `bench` times it (same
    tiles, warm-up, calls and blocks), then the CPU it burns while idle after a call."""
    import torch

    from tdpcr_edge.bench.matrix import Combo, make_runner
    from tdpcr_edge.bench.row import tile_calls
    from tdpcr_edge.bench.timing import latency_fields, time_rows
    from tdpcr_edge.export.heldout import DRIFT_SEED, tiles_from
    from tdpcr_edge.train.checkpoint import load_checkpoint

    torch.set_num_threads(os.cpu_count())
    ckpt = load_checkpoint(spec["checkpoint"])
    tiles = tiles_from(spec["data"], spec["tiles"], spec["tile"], ckpt.normalization, ckpt.config.num_classes, DRIFT_SEED)
    path = lambda k: Path(spec[k]) if spec.get(k) else None  # noqa: E731
    runner = make_runner(Combo(**spec["combo"]), ckpt.path, path("artifact"), path("engine")).activate()

    call = tile_calls(runner, tiles)
    for i in range(len(tiles)):  # bench scores every row on every tile before timing it: the same here
        call(i)
    times = time_rows([call], spec["warmup"], spec["iterations"], spec["rounds"])[0]
    idle_cpu_ms = idle_cores(lambda: call(0), IDLE_S) * IDLE_S * 1e3
    return {**latency_fields(times.blocks), "idle_cpu_ms": idle_cpu_ms}


def _alone(row: dict, report: dict, opts) -> dict:
    combo = {k: row[k] for k in ("backend", "precision", "variant", "device")}
    model = Path(row["model_path"])
    spec = {
        "combo": combo,
        "checkpoint": report["checkpoint"]["path"],
        "data": report["data"],
        "tiles": report["tiles"],
        "tile": report["tile"],
        "warmup": opts.warmup,
        "iterations": opts.iterations,
        "rounds": opts.rounds,
        "artifact": str(model) if (model / "manifest.json").exists() else None,
        "engine": str(model) if (model / "engine.json").exists() else None,
    }
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_alone", json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=900,
    )
    if out.returncode:
        raise RuntimeError(f"{combo}: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _name(row: dict) -> str:
    from tdpcr_edge.report.rows import row_label

    return row_label(row)


def _summarise(rows: dict) -> dict:
    from tdpcr_edge.report.rows import fastest_within_budget, tied

    goals, lines, out = _goals(), [], {}
    bench = [r for k, r in rows.items() if k.startswith("bench1/")]
    alone = {k.removeprefix("alone/"): r for k, r in rows.items() if k.startswith("alone/")}
    devs = {}
    for r in bench:
        a = alone.get(_name(r))
        if a is None:
            continue
        devs[_name(r)] = r["latency_ms_p50"] / a["latency_ms_p50"]
        lines.append(
            f"{_name(r)}: bench {r['latency_ms_p50']:.1f} ms, alone {a['latency_ms_p50']:.1f} ms, ratio {devs[_name(r)]:.3f}; "
            f"idle CPU after a call {a['idle_cpu_ms']:.0f} ms per {IDLE_S * 1e3:.0f} ms"
        )
    if devs:
        worst = max(devs, key=lambda n: abs(devs[n] - 1))
        out["bench_over_alone"] = devs
        out["bench_over_alone_max_dev"] = abs(devs[worst] - 1)
        ok = out["bench_over_alone_max_dev"] <= goals["bench_over_alone_max_dev"]
        lines.append(
            f"largest bench/alone deviation: {100 * out['bench_over_alone_max_dev']:.1f}% ({worst}; goal <= 10%: "
            f"{'met' if ok else 'MISSED'})"
        )
    # Rows tied alone must be tied in bench.
    alone_rows = [{**r, **alone[_name(r)]} for r in bench if _name(r) in alone]
    missed_ties = [
        f"{_name(a)} ~ {_name(b)}"
        for i, a in enumerate(alone_rows)
        for b in alone_rows[i + 1 :]
        if tied(a, b) and not tied(next(r for r in bench if _name(r) == _name(a)), next(r for r in bench if _name(r) == _name(b)))
    ]
    out["tied_alone_not_in_bench"] = missed_ties
    lines.append(f"rows tied alone but not in bench: {', '.join(missed_ties) or 'none'}")
    firsts = [fastest_within_budget({"rows": [r for k, r in rows.items() if k.startswith(f"bench{n}/")]}) for n in (1, 2)]
    if all(firsts):
        same = _name(firsts[0]) == _name(firsts[1])
        out["same_fastest_in_two_runs"] = same
        lines.append(f"fastest within budget: run 1 {_name(firsts[0])}, run 2 {_name(firsts[1])} ({'the same' if same else 'DIFFERENT'})")
    best = fastest_within_budget({"rows": alone_rows})
    if best is not None:
        p50 = {_name(r): r["latency_ms_p50"] for r in alone_rows}
        out["fastest_alone"] = _name(best)
        for key, peer in (("fastest_over_ov_default", "openvino fp32 default"), ("fastest_over_torch_eager", "torch fp32 cpu")):
            if peer in p50:
                out[key] = p50[peer] / best["latency_ms_p50"]
                lines.append(
                    f"fastest within budget alone, {_name(best)} {best['latency_ms_p50']:.1f} ms: {out[key]:.2f}x {peer} "
                    f"(goal {goals[key]}x: {'met' if out[key] >= goals[key] else 'MISSED'})"
                )
    return {"ratios": out, "goals": goals, "lines": lines}


@pytest.mark.benchmark(group=SUITE)
def test_bench_against_rows_alone(benchmark, tmp_path_factory):
    from tdpcr_edge.bench.options import BenchOptions
    from tdpcr_edge.bench.run import run_bench

    root = tmp_path_factory.mktemp("alone")
    target = "x86-cpu" if platform.machine().lower() in ("x86_64", "amd64") else None
    opts = BenchOptions(
        report=root / "report", tiles=TILES, iterations=ITERATIONS, calib_tiles=CALIB_TILES, target=target, backends="torch,ort,openvino"
    )

    def say(text: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)

    reports = [run_bench(opts, on_stage=lambda s: say(f"bench 1: {s}"))]
    RESULTS.setdefault(SUITE, {"rows": {}})
    RESULTS[SUITE]["summarise"] = _summarise
    RESULTS[SUITE]["method"] = (
        f"`tdpcr-edge bench` as make demo runs it ({TILES} tiles, {ITERATIONS} timed calls in {opts.rounds} rotated blocks per row, "
        f"target {target}); then each CPU row alone in a fresh process (the same tiles, warm-up, calls and blocks), one row after "
        "the other; then bench again on the same artifacts. Ratio = bench p50 / alone p50. Idle CPU: the process's user+system "
        f"CPU time during {IDLE_S * 1e3:.0f} ms of sleep right after a call."
    )
    cpu_rows = [r for r in reports[0]["rows"] if r.get("device", "cpu") == "cpu"]
    for r in cpu_rows:
        say(f"alone: {_name(r)}")
        record(SUITE, f"alone/{_name(r)}", _alone(r, reports[0], opts))
    reports.append(benchmark.pedantic(run_bench, args=(opts,), kwargs={"on_stage": lambda s: say(f"bench 2: {s}")}, rounds=1, iterations=1))
    for n, rep in enumerate(reports, 1):
        for r in rep["rows"]:
            if r.get("device", "cpu") == "cpu":
                record(
                    SUITE,
                    f"bench{n}/{_name(r)}",
                    {
                        k: r.get(k)
                        for k in (
                            "backend",
                            "precision",
                            "variant",
                            "device",
                            "latency_ms_p50",
                            "latency_ms_p25",
                            "latency_ms_p75",
                            "latency_ms_rounds",
                            "rounds_kept",
                            "psnr_delta",
                            "miou_delta",
                            "within_budget",
                            "model_mb",
                            "graph_sha256",
                        )
                    },
                )
    assert cpu_rows


if __name__ == "__main__":
    print(json.dumps(time_alone(json.loads(sys.argv[1]))))
