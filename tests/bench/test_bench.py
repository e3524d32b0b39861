"""`tdpcr-edge bench` and its report: the registry, the Pareto front, a real end-to-end run
on a small model, the pytest-benchmark conversion and the tegrastats sampler."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from tdpcr_edge.bench.matrix import COMBOS, Combo, select, unavailable
from tdpcr_edge.bench.options import BenchOptions
from tdpcr_edge.bench.power import TegraStats, input_power_mw, parse_rails
from tdpcr_edge.bench.run import ROW_FIELDS, run_bench
from tdpcr_edge.errors import ConfigError, DataError
from tdpcr_edge.report.bench_report import from_benchmark_json, markdown, write_report
from tdpcr_edge.report.plot import figure
from tdpcr_edge.report.rows import fastest_within_budget, pareto_front, row_label

PNG = b"\x89PNG\r\n\x1a\n"


def test_select_follows_the_registry():
    names = [c.name for c in select("torch,ort", "fp32,int8")]
    assert names == [
        "torch-fp32-eager-cpu",
        "torch-fp32-compile-cpu",
        "torch-fp32-eager-cuda",
        "torch-fp32-compile-cuda",
        "torch-fp32-fused-cuda",
        "ort-fp32",
        "ort-int8",
    ]
    assert {c.precision for c in select("ort", "fp16")} == {"fp16"}
    # bf16 is OpenVINO's alone; its FP32 graph is also run with OpenVINO's own defaults, as a peer.
    assert [c.name for c in select("ort,openvino,trt", "fp32,bf16")] == [
        "ort-fp32",
        "openvino-fp32-default",
        "openvino-fp32",
        "openvino-bf16",
        "trt-fp32",
    ]
    with pytest.raises(ConfigError, match="unknown backend tensorflow"):
        select("torch,tensorflow", "fp32")
    with pytest.raises(ConfigError, match="unknown precision int4"):
        select("ort", "int4")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reasons given on a machine without a GPU")
def test_unavailable_rows_say_why():
    assert unavailable(Combo("torch", "fp32", "eager", "cpu")) is None
    assert unavailable(Combo("ort", "int8")) is None
    assert unavailable(Combo("torch", "fp16", "eager", "cuda")) == "no CUDA GPU on this machine"
    trt = unavailable(Combo("trt", "fp16", device="cuda"))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert "TensorRT is not installed" in trt


def test_pareto_front():
    rows = [
        {"latency_ms_p50": 10.0, "psnr": 30.0},  # fastest
        {"latency_ms_p50": 20.0, "psnr": 32.0},  # slower, better: on the front
        {"latency_ms_p50": 25.0, "psnr": 31.0},  # dominated by row 1
        {"latency_ms_p50": 20.0, "psnr": 32.0},  # alike row 1 in both: only the first is kept
        {"latency_ms_p50": 40.0, "psnr": None},  # not measured: out
        {"latency_ms_p50": 30.0, "psnr": 32.004},  # better than row 1 by less than the table prints: off
        {"latency_ms_p50": 20.0, "psnr": 32.003},  # as fast as row 1, as accurate as printed: the first is kept
        {"latency_ms_p50": 35.0, "psnr": 32.014},  # better than row 5 by one printed step: on
        {"latency_ms_p50": 5.0, "psnr": 33.0, "within_budget": False},  # over budget: off, and beats no one
    ]
    assert pareto_front(rows, "psnr") == [0, 1, 7]
    # A faster row of the same printed mIoU keeps a slower one off, even when the slower one
    # leads in the fourth decimal; a strictly better accuracy at the same latency wins.
    rows = [
        {"latency_ms_p50": 202.0, "miou": 76.2254},
        {"latency_ms_p50": 45.0, "miou": 76.2253},
        {"latency_ms_p50": 18.0, "miou": 75.87},
        {"latency_ms_p50": 24.0, "miou": 75.95},  # 0.08 points above row 2: alike, slower
        {"latency_ms_p50": 45.0, "miou": 76.4},  # as fast as row 1, a printed step better: row 1 off
    ]
    assert pareto_front(rows, "miou") == [2, 4]
    assert pareto_front(rows[:4], "miou") == [2, 1]


def test_pareto_front_tells_apart_only_latencies_outside_each_others_spread():
    def row(p50, p25, p75, psnr):
        return {"latency_ms_p50": p50, "latency_ms_p25": p25, "latency_ms_p75": p75, "psnr": psnr}

    # OpenVINO FP32 and FP16 of one bench run: 0.1 ms apart inside each other's spread, the same
    # accuracy. Faster by noise is not faster: the first stays, the second is off.
    fp32, fp16 = row(54.4, 53.8, 55.6, 32.68), row(54.3, 54.3, 54.7, 32.68)
    assert pareto_front([fp32, fp16], "psnr") == [0]
    # Tied in latency with a row more accurate by a printed step: off, even when 'faster'.
    assert pareto_front([row(33.6, 33.5, 33.7, 32.67), row(33.7, 33.5, 34.0, 32.69)], "psnr") == [1]
    # Out of each other's spread, the faster one stays on beside the more accurate one.
    assert pareto_front([row(25.8, 25.5, 26.6, 32.62), row(33.7, 33.5, 34.0, 32.69)], "psnr") == [0, 1]


def _alike_report() -> dict:
    """Rows that measure alike (FP32 and FP16 on a CPU) and rows far over the drift budget."""

    def row(backend, precision, lat, psnr, miou, ok=True, variant=""):
        return {
            "backend": backend,
            "precision": precision,
            "variant": variant,
            "device": "cpu",
            "latency_ms_p50": lat,
            "psnr": psnr,
            "miou": miou,
            "within_budget": ok,
        }

    rows = [
        row("torch", "fp32", 128.3, 30.262, 71.40, variant="eager"),
        row("ort", "fp32", 128.9, 30.261, 71.40),
        row("ort", "fp16", 129.0, 30.263, 71.38),
        row("openvino", "fp32", 129.2, 30.262, 71.41),
        row("openvino", "fp16", 129.4, 30.262, 71.41),
        row("openvino", "bf16", 139.4, 30.16, 71.0),
        row("ort", "mixed", 163.6, 30.16, 71.0),
        row("torch", "fp16", 147.8, 30.26, 71.38, variant="eager"),
        row("openvino", "int8", 60.0, 22.1, 27.3, ok=False),
        row("ort", "int8", 90.0, 21.5, 31.9, ok=False),
        row("openvino", "mixed", 95.0, 30.1, 70.5, ok=False),
    ]
    return {"rows": rows, "device_label": "test", "date": "2026-12-01"}


def test_labels_sit_beside_their_points_inside_the_axes_apart():
    from matplotlib.text import Annotation, Text
    from matplotlib.transforms import Transform

    report = _alike_report()
    fig = figure(report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        labels = [t for t in ax.texts if isinstance(t, Annotation)]
        assert sorted(t.get_text().split(" (")[0] for t in labels) == sorted(row_label(r) for r in report["rows"])
        area = ax.get_window_extent(renderer)
        boxes = []
        for t in labels:
            box = Text.get_window_extent(t, renderer)  # the text alone, not its connector
            x, y = (t.xycoords if isinstance(t.xycoords, Transform) else ax.transData).transform(t.xy)
            assert area.x0 <= box.x0 and box.x1 <= area.x1 and area.y0 <= box.y0 and box.y1 <= area.y1, t.get_text()
            dx, dy = max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1)
            assert (dx * dx + dy * dy) ** 0.5 < 3 * box.height, t.get_text()
            boxes.append((t.get_text(), box))
        for i, (a, p) in enumerate(boxes):
            for b, q in boxes[i + 1 :]:
                assert min(p.x1, q.x1) - max(p.x0, q.x0) <= 0.5 or min(p.y1, q.y1) - max(p.y0, q.y0) <= 0.5, (a, b)


def test_over_budget_rows_do_not_set_the_scale():
    report = _alike_report()
    fig = figure(report)
    for ax, metric in zip(fig.axes, ("psnr", "miou")):
        inside = [r[metric] for r in report["rows"] if r["within_budget"]]
        y0, y1 = ax.get_ylim()
        assert y0 < min(inside) and max(inside) < y1
        assert (max(inside) - min(inside)) / (y1 - y0) > 0.5  # the in-budget rows fill the panel
        texts = [t.get_text() for t in ax.texts]
    # Rows off the scale are pinned at its lower edge, their real value in the label.
    assert "openvino int8 (22.10 dB)" in [t.get_text() for t in fig.axes[0].texts]
    assert "openvino int8 (27.3 %)" in texts and "openvino mixed (70.5 %)" in texts


def test_fastest_within_budget():
    rows = [
        {"backend": "torch", "precision": "fp32", "variant": "eager", "device": "cpu", "latency_ms_p50": 50.0, "within_budget": True},
        {"backend": "torch", "precision": "fp32", "variant": "compile", "device": "cpu", "latency_ms_p50": 30.0, "within_budget": True},
        {"backend": "openvino", "precision": "int8", "variant": "", "device": "cpu", "latency_ms_p50": 10.0, "within_budget": False},
        {"backend": "openvino", "precision": "fp32", "variant": "default", "device": "cpu", "latency_ms_p50": 15.0, "within_budget": True},
        {"backend": "openvino", "precision": "bf16", "variant": "", "device": "cpu", "latency_ms_p50": 20.0, "within_budget": True},
    ]
    # Over budget, a compiler and a peer's defaults are not what a stream deploys.
    assert fastest_within_budget({"rows": rows})["precision"] == "bf16"
    assert fastest_within_budget({"rows": rows[:1]}, device="cuda") is None
    assert fastest_within_budget({"rows": []}) is None
    # Over-budget rows are off the Pareto front, however fast.
    assert 2 not in pareto_front([{**r, "psnr": 30.0} for r in rows], "psnr")


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory, scene_dir, random_checkpoint):
    root = tmp_path_factory.mktemp("bench")
    opts = BenchOptions(
        report=root / "report",
        checkpoint=random_checkpoint,
        backends="torch,ort,openvino,trt",
        precisions="fp32,fp16",
        data=str(scene_dir),
        tiles=3,
        tile=64,
        warmup=1,
        iterations=3,
        skip="torch-fp32-compile-cpu,openvino-fp32-default,openvino-fp16",
        drift_budget="psnr=0.3,miou=1.0,max_abs=2e-5",
    )
    return opts, run_bench(opts)


def test_bench_rows_measured(bench_run):
    opts, report = bench_run
    rows = {(r["backend"], r["precision"], r["device"]): r for r in report["rows"]}
    assert set(rows) >= {("torch", "fp32", "cpu"), ("ort", "fp32", "cpu"), ("ort", "fp16", "cpu")}
    for r in report["rows"]:
        assert set(ROW_FIELDS) <= set(r)
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p95"]
        assert r["tiles_per_s"] > 0 and r["model_mb"] > 0
        # Measured in a fresh process per row: no row reads as free because an earlier one
        # left its memory mapped.
        assert r["peak_mem_mb"] > 1, r
    # torch FP32 is the reference itself; ORT FP32 must agree with it.
    assert rows[("torch", "fp32", "cpu")]["psnr_delta"] == 0.0
    assert abs(rows[("ort", "fp32", "cpu")]["psnr_delta"]) < 1e-3
    assert rows[("ort", "fp32", "cpu")]["max_abs_error"] < 1e-4
    assert rows[("ort", "fp16", "cpu")]["model_mb"] < rows[("ort", "fp32", "cpu")]["model_mb"]
    # Each row is judged on its own drift: FP16 storage rounding breaks a 2e-5 max-abs budget, FP32 graphs do not.
    assert rows[("ort", "fp32", "cpu")]["within_budget"] and not rows[("ort", "fp16", "cpu")]["within_budget"]
    assert "max_abs" in rows[("ort", "fp16", "cpu")]["over_budget"][0]
    if ("openvino", "fp32", "cpu") in rows:
        ov = rows[("openvino", "fp32", "cpu")]
        assert ov["max_abs_error"] < 1e-4 and ov["within_budget"] and ov["start_s"] > 0
    assert all(r["model_path"] for r in report["rows"])
    assert "torch-fp32-compile-cpu" not in {f"{r['backend']}-{r['precision']}-{r['variant']}-{r['device']}" for r in report["rows"]}
    assert report["tiles"] == 3 and report["exported"] == ["fp32", "fp16"]
    assert report["device"]["cores"] == os.cpu_count()
    for key in ("warm-up", "p50", "p95"):
        assert key in report["method"]
    if not torch.cuda.is_available():
        skipped = {(s["backend"], s["precision"], s["variant"]) for s in report["skipped"]}
        assert ("torch", "fp16", "eager") in skipped and all(s["reason"] for s in report["skipped"])


def test_bench_reuses_matching_artifacts(bench_run):
    opts, _ = bench_run
    before = {p: p.stat().st_mtime_ns for p in (opts.report / "artifacts").glob("*/model.onnx")}
    again = run_bench(BenchOptions(**{**opts.__dict__, "backends": "ort", "iterations": 1}))
    assert again["exported"] == []
    assert {p: p.stat().st_mtime_ns for p in (opts.report / "artifacts").glob("*/model.onnx")} == before


def test_bench_refuses_a_stale_artifact_folder(bench_run, tmp_path):
    opts, _ = bench_run
    # The artifacts were exported at tile 64; asking for 128 must not silently reuse them.
    with pytest.raises(ConfigError, match="another checkpoint, precision or tile"):
        run_bench(
            BenchOptions(
                **{
                    **opts.__dict__,
                    "backends": "ort",
                    "precisions": "fp32",
                    "tile": 128,
                    "data": "synthetic",
                    "tiles": 1,
                    "report": tmp_path,
                    "artifacts": opts.report / "artifacts",
                }
            )
        )


def test_report_files(bench_run, tmp_path):
    _, report = bench_run
    paths = write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "report.png"]
    assert json.loads(paths[0].read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    md = paths[1].read_text()
    assert md.count("\n| ort ") == 2 and "| torch fp32 cpu |" in md and "Method:" in md
    assert paths[2].read_bytes()[:8] == PNG
    assert not list((tmp_path / "out").glob(".*tmp"))


def _benchmark_json(tmp_path, with_data=True):
    def bench(name, median, extra):
        stats = {"median": median, "mean": median * 1.1, "min": median * 0.9, "max": median * 2, "stddev": 0.001, "rounds": 5}
        if with_data:
            stats["data"] = [median * f for f in (0.9, 1.0, 1.0, 1.1, 2.0)]
        return {"name": name, "fullname": f"benchmarks/bench_precisions.py::{name}", "stats": stats, "extra_info": extra}

    row = {
        "variant": "",
        "device": "cpu",
        "model_mb": 1.2,
        "psnr": 30.0,
        "ssim": 0.9,
        "sam": 4.0,
        "miou": 70.0,
        "psnr_delta": 0.0,
        "miou_delta": 0.0,
    }
    data = {
        "machine_info": {"machine": "x86_64", "cpu": {"brand_raw": "Test CPU"}},
        "datetime": "2026-11-24T10:00:00",
        "benchmarks": [
            bench(
                "test_precision_row[ort-fp32]",
                0.05,
                {"backend": "ort", "precision": "fp32", **row, "method": "M", "device_info": {"cpu": "Test CPU", "cores": 2}},
            ),
            bench("test_precision_row[ort-int8]", 0.08, {"backend": "ort", "precision": "int8", **row, "psnr": 25.0, "psnr_delta": -5.0}),
            bench("test_backend_latency[tiny-torch]", 0.07, {}),  # no backend/precision: not a report row
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def test_from_benchmark_json(tmp_path):
    report = from_benchmark_json(_benchmark_json(tmp_path))
    assert [(r["backend"], r["precision"]) for r in report["rows"]] == [("ort", "fp32"), ("ort", "int8")]
    fp32 = report["rows"][0]
    assert fp32["latency_ms_p50"] == pytest.approx(50.0)
    assert fp32["latency_ms_p95"] == pytest.approx(100.0)
    assert fp32["tiles_per_s"] == pytest.approx(1 / 0.055)
    assert report["method"] == "M" and report["date"] == "2026-11-24" and "Test CPU" in report["device_label"]
    assert "| ort int8 |" in markdown(report)
    assert all(p.exists() for p in write_report(report, tmp_path / "r"))
    # Without raw rounds, p95 is unknown rather than invented.
    assert from_benchmark_json(_benchmark_json(tmp_path, with_data=False))["rows"][0]["latency_ms_p95"] is None


def test_from_benchmark_json_rejects_other_files(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(DataError, match="x.json: not a pytest-benchmark JSON"):
        from_benchmark_json(bad)
    bad.write_text(json.dumps({"benchmarks": [{"name": "a", "stats": {"median": 1, "mean": 1}, "extra_info": {}}]}))
    with pytest.raises(DataError, match="no benchmark in it carries backend/precision"):
        from_benchmark_json(bad)


ORIN = (
    "11-24-2026 10:00:00 RAM 2448/7620MB (lfb 1x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@729,1%@729,0%@729,0%@729,off,off] "
    "EMC_FREQ 0% GR3D_FREQ 45% cpu@47.5C soc2@46.9C VDD_IN 5391mW/4791mW VDD_CPU_GPU_CV 1553mW/953mW VDD_SOC 1378mW/1378mW"
)
NANO = (
    "RAM 1903/3964MB (lfb 80x4MB) CPU [3%@102,2%@102,1%@102,0%@102] GR3D_FREQ 0%@76 POM_5V_IN 2204/2204 POM_5V_GPU 0/0 POM_5V_CPU 367/367"
)


def test_tegrastats_lines():
    assert parse_rails(ORIN) == {"VDD_IN": 5391, "VDD_CPU_GPU_CV": 1553, "VDD_SOC": 1378}
    assert input_power_mw(ORIN) == 5391
    assert input_power_mw(NANO) == 2204
    assert input_power_mw("RAM 1903/3964MB CPU [3%@102]") is None


def test_tegrastats_sampler_runs_the_tool(tmp_path, monkeypatch):
    # A stand-in tegrastats that prints real-format lines, to exercise the process plumbing.
    tool = tmp_path / "tegrastats"
    tool.write_text(f"#!/bin/sh\nwhile true; do echo '{ORIN}'; echo '{ORIN.replace('5391mW', '4391mW')}'; sleep 0.02; done\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with TegraStats(interval_ms=20) as power:
        import time

        time.sleep(0.3)
    assert power.available and len(power.samples) >= 2
    assert 4.3 <= power.mean_power_w <= 5.4
    assert TegraStats(command="no-such-tegrastats").available is False


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_bench_bad_options(tmp_path):
    for args, needle in ((("--backends", "tf"), "unknown backend tf"), (("--precisions", "int4"), "unknown precision int4")):
        p = run_cli("bench", "--report", tmp_path / "r", *args)
        lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
        assert p.returncode == 2 and len(lines) == 1 and needle in lines[0], p.stderr
    assert not (tmp_path / "r").exists()


def test_cli_report_from_benchmark_json(tmp_path):
    p = run_cli("report", _benchmark_json(tmp_path), "--report", tmp_path / "rep")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "rep" / "report.png").read_bytes()[:8] == PNG
    p = run_cli("report", tmp_path / "missing.json", "--report", tmp_path / "rep2")
    assert p.returncode == 2 and "missing.json" in p.stderr and not (tmp_path / "rep2").exists()


def test_every_registry_row_is_named_uniquely():
    assert len({c.name for c in COMBOS}) == len(COMBOS)


def test_peak_memory_grows_with_the_tile(random_checkpoint):
    """A CPU row's memory is measured in a process of its own and is what the call needs:
    a 4x larger tile needs clearly more."""
    from tdpcr_edge.bench.matrix import Combo
    from tdpcr_edge.bench.memory_probe import peak_memory_mb
    from tdpcr_edge.data.scenes import SceneArrays

    rng = np.random.default_rng(0)
    mb = {}
    for size in (128, 256):
        tile = SceneArrays("t", rng.random((13, size, size), np.float32), rng.random((2, size, size), np.float32), None, None, None, None)
        mb[size] = peak_memory_mb(Combo("torch", "fp32", "eager", "cpu"), random_checkpoint, None, None, tile, calls=1)
    assert 5 < mb[128] and mb[256] > 1.5 * mb[128], mb


def test_bench_skip_names_rows(bench_run, tmp_path):
    opts, _ = bench_run
    with pytest.raises(ConfigError, match="--skip torch-fp64: no such row"):
        run_bench(BenchOptions(**{**opts.__dict__, "skip": "torch-fp64", "report": tmp_path}))


def test_stream_runs_the_reports_fastest_row_within_budget(bench_run, tmp_path, scene_dir):
    from tdpcr_edge.backends.factory import from_report
    from tdpcr_edge.stream import StreamOptions, run_stream

    _, report = bench_run
    # Without spreads no two rows are tied (a few calls on 64-pixel tiles often are; ties have
    # their own tests), so the fastest row is the one with the lowest p50.
    spread = ("latency_ms_p25", "latency_ms_p75", "latency_ms_rounds", "rounds_kept", "graph_sha256")
    report = {**report, "rows": [{k: v for k, v in r.items() if k not in spread} for r in report["rows"]]}
    write_report(report, tmp_path / "rep")
    path, backend, row = from_report(tmp_path / "rep" / "report.json")
    # Stated here, not asked of the function from_report calls: the fastest row a stream can
    # run as measured (eager torch or an artifact on its backend, on the CPU or a TensorRT
    # engine) among those within the drift budget.
    runnable = [r for r in report["rows"] if r["variant"] in ("", "eager") and (r["device"] == "cpu" or r["backend"] == "trt")]
    ranked = sorted((r for r in runnable if r["within_budget"]), key=lambda r: r["latency_ms_p50"])
    assert (backend, row["precision"], str(path)) == (ranked[0]["backend"], ranked[0]["precision"], ranked[0]["model_path"])
    # The fastest row put over budget: the next one is picked.
    slower = {**report, "rows": [{**r, "within_budget": r is not ranked[0] and r["within_budget"]} for r in report["rows"]]}
    (tmp_path / "slower.json").write_text(json.dumps(slower))
    picked = from_report(tmp_path / "slower.json")[2]
    assert (picked["backend"], picked["precision"]) == (ranked[1]["backend"], ranked[1]["precision"])
    scene = sorted(scene_dir.glob("scene_*"))[0]
    rec = run_stream(
        StreamOptions(
            optical=scene / "optical_cloudy.tif",
            sar=scene / "sar.tif",
            out=tmp_path / "out",
            model=str(tmp_path / "rep" / "report.json"),
            tile=64,
            overlap=16,
        )
    )
    assert rec["model"]["backend"] == backend and rec["model"]["source"] == str(path)
    assert rec["model"]["picked_from_report"]["row"] == f"{backend} {row['precision']}"
    # Nothing deployable: one line saying so; not a report: one line naming the file.
    over = {**report, "rows": [{**r, "within_budget": False} for r in report["rows"]]}
    (tmp_path / "over.json").write_text(json.dumps(over))
    with pytest.raises(ConfigError, match="no row is within the drift budget"):
        from_report(tmp_path / "over.json")
    (tmp_path / "junk.json").write_text("[1, 2]")
    with pytest.raises(
        DataError, match=r"junk\.json: holds a list, not an object \(a table of keys\); pass a report\.json written by `tdpcr-edge bench`"
    ):
        from_report(tmp_path / "junk.json")


def _row(precision, p50, p25, p75, psnr, mb, backend="openvino", graph=None):
    return {
        "backend": backend,
        "precision": precision,
        "variant": "",
        "device": "cpu",
        "within_budget": True,
        "latency_ms_p50": p50,
        "latency_ms_p25": p25,
        "latency_ms_p75": p75,
        "psnr_delta": psnr,
        "miou_delta": 0.0,
        "model_mb": mb,
        "graph_sha256": graph,
    }


def test_rows_inside_each_others_spread_are_tied_and_the_least_drift_wins():
    from tdpcr_edge.report.rows import fastest_tie, tied

    # int8 and mixed: the same graph, measured 36.0 and 29.8 ms on one noisy run.
    int8, mixed = _row("int8", 36.0, 33.0, 39.0, -0.13, 0.4, graph="g"), _row("mixed", 29.8, 28.0, 31.0, -0.13, 0.4, graph="g")
    fp32, ort = _row("fp32", 31.5, 30.5, 34.0, 0.0, 1.3, graph="f"), _row("fp32", 50.0, 48.0, 52.0, 0.0, 1.3, backend="ort", graph="f")
    report = {"rows": [int8, mixed, fp32, ort]}
    assert tied(int8, mixed) and not tied(int8, _row("mixed", 29.8, 28.0, 31.0, -0.13, 0.4, graph="h"))  # same graph, else apart
    assert tied(mixed, fp32) and not tied(mixed, ort)
    assert [r["precision"] for r in fastest_tie(report)] == ["mixed", "int8", "fp32"]
    assert fastest_within_budget(report) is fp32  # least drift among the tied rows
    # Out of the spread, the fastest row wins whatever its drift.
    far = _row("fp32", 45.0, 44.0, 46.0, 0.0, 1.3, graph="f")
    assert fastest_within_budget({"rows": [mixed, far]}) is mixed
    # Equal drift: the smaller model.
    small = _row("int8", 30.5, 29.0, 32.0, -0.13, 0.3, graph="s")
    assert fastest_within_budget({"rows": [mixed, small]}) is small
    assert "tied with" in markdown({**report, "device_label": "cpu", "date": "d"})
