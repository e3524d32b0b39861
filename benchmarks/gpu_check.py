"""The device check: everything this project can only measure on a GPU, in one command that
a lent GPU machine or a Jetson runs in under 10 minutes (`make gpu-check`).

Steps, each with its own time limit, each recorded with its status, time and figures:
  1. kernels: CMake builds the host reference, the CUDA library for this GPU's SM, and the
     TensorRT plugin when TensorRT's headers are found;
  2. gpu-tests: the tests marked gpu (CUDA kernel against PyTorch, fused model, training on
     CUDA in FP32 and AMP, quantisation-aware training, DDP over NCCL with two GPUs);
  3. bench_pgf: the fused kernel against eager and torch.compile and the copy bandwidth;
  4. stream: the torch backend on CUDA streaming a 2048 x 2048 synthetic scene;
  5. bench_train: training steps/s FP32 against AMP bf16, and the wait on data;
  6. tensorrt: export, build-engine (gated on the golden set), verify, run and drift, when TensorRT is installed.
One JSON, benchmarks/results/gpu-check-<device>-<date>.json, holds them all; the pytest
suites also write their own results beside it.

Run: make gpu-check  (or: PYTHONPATH=. python3 -m benchmarks.gpu_check [--skip STEP,...])
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BUDGET_S = 570  # the whole check, under the 10 minutes a lent machine's command may run
STEP_LIMITS = {"kernels": 180, "gpu-tests": 240, "bench_pgf": 150, "stream": 120, "bench_train": 150, "tensorrt": 240}
# What the check imports besides torch; missing ones are reported with how to bring them.
NEEDS = ("torch", "numpy", "rasterio", "typer", "rich", "torchmetrics", "matplotlib", "pytest", "pytest_benchmark", "onnx")


def missing_modules() -> list[str]:
    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


def run(cmd: list[str], limit: float, env: dict | None = None, cwd: Path = ROOT) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=limit, env={**os.environ, **(env or {})})
        return p.returncode, p.stdout + p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return 124, out + f"\n(stopped after {limit:.0f} s)", time.perf_counter() - t0


def pytest_counts(output: str) -> dict:
    """pytest's summary line as numbers: {'passed': 12, 'skipped': 3, ...}."""
    tail = output.strip().splitlines()[-1] if output.strip() else ""
    return {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed)", tail)}


def gpu_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    p = torch.cuda.get_device_properties(0)
    return {
        "gpu": p.name,
        "sm": f"{p.major}{p.minor}",
        "memory_gib": round(p.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def tensorrt_include() -> str | None:
    for folder in (
        os.environ.get("TensorRT_INCLUDE_DIR"),
        "/usr/include/aarch64-linux-gnu",
        "/usr/include/x86_64-linux-gnu",
        "/usr/local/tensorrt/include",
    ):
        if folder and Path(folder, "NvInferRuntime.h").is_file():
            return folder
    return None


def step_kernels(build: Path, sm: str, limit: float) -> dict:
    trt = tensorrt_include()
    cfg = ["cmake", "-S", str(ROOT), "-B", str(build), f"-DCMAKE_CUDA_ARCHITECTURES={sm}"] + (
        [f"-DTensorRT_INCLUDE_DIR={trt}"] if trt else []
    )
    code, out, t1 = run(cfg, limit)
    if code == 0:
        code, out2, t2 = run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2)], limit - t1)
        out, t1 = out + out2, t1 + t2
    built = sorted(p.name for p in build.glob("*.so"))
    return {
        "status": "ok" if code == 0 and "libtdpcr_pgf_cuda.so" in built else "failed",
        "seconds": round(t1, 1),
        "sm": sm,
        "tensorrt_headers": trt,
        "built": built,
        "log_tail": out[-1500:] if code else "",
    }


def step_pytest(args: list[str], limit: float, env: dict | None = None) -> dict:
    code, out, t = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], limit, env)
    counts = pytest_counts(out)
    status = "ok" if code == 0 else "failed"
    return {
        "status": status,
        "seconds": round(t, 1),
        "counts": counts,
        "summary": [ln for ln in out.splitlines() if ln.startswith("  ")][-6:],
        "log_tail": out[-2500:] if code else "",
    }


def step_stream(limit: float) -> dict:
    """The torch backend on CUDA streaming a 2048 x 2048 scene (tiles/s, and the stream's own
    breakdown), against the same runner called on the tiles alone."""
    import torch

    from tdpcr_edge.backends.factory import model_metadata
    from tdpcr_edge.backends.torch_runner import TorchRunner
    from tdpcr_edge.data.scenes import FILES, write_scene
    from tdpcr_edge.data.synthetic import make_scene
    from tdpcr_edge.stream import StreamOptions, run_stream

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_scene(Path(tmp) / "scene", make_scene(2026, 0, 2048))
        rows = {}
        for half in (False, True):
            runner = TorchRunner(device="cuda", half=half)
            meta = model_metadata(runner, "torch", None)
            opts = StreamOptions(
                optical=folder / FILES["optical"], sar=folder / FILES["sar"], out=Path(tmp) / f"out-{half}", batch=8, quicklook=False
            )
            with runner:
                runner.activate()
                record = run_stream(opts, opened=(runner, meta, 1))
            torch.cuda.synchronize()
            rows["fp16" if half else "fp32"] = {
                "tiles": record["tiles"]["processed"],
                "tiles_per_s": record["tiles_per_s"],
                "wall_s": record["wall_s"],
                "latency_ms_per_tile": record.get("latency_ms_per_tile"),
            }
            if time.perf_counter() - t0 > limit:
                break
    return {"status": "ok", "seconds": round(time.perf_counter() - t0, 1), "rows": rows}


def step_tensorrt(work: Path, limit: float) -> dict:
    if importlib.util.find_spec("tensorrt") is None:
        return {"status": "skipped", "reason": "TensorRT's Python package is not installed on this machine"}
    art, eng = work / "art", work / "engine"
    cli = [sys.executable, "-m", "tdpcr_edge.cli"]
    t0 = time.perf_counter()
    log = []
    for cmd in (
        # The GPU profile's tile, so the golden set is cut at the engine's tile and build-engine can gate on it.
        cli + ["export", "--precision", "fp16", "--target", "x86-h100", "--out", str(art)],
        cli + ["build-engine", str(art), "--out", str(eng), "--target", "x86-h100"],
        cli + ["verify", str(eng)],
        cli + ["compare", str(eng)],
    ):
        code, out, _ = run(cmd, limit - (time.perf_counter() - t0))
        log.append(out[-1500:])
        if code:
            return {"status": "failed", "seconds": round(time.perf_counter() - t0, 1), "step": cmd[3], "log_tail": "\n".join(log)[-3000:]}
    return {"status": "ok", "seconds": round(time.perf_counter() - t0, 1), "compare": log[-1][-1500:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Device check: kernels, GPU tests, GPU benchmarks, TensorRT; one JSON.")
    parser.add_argument("--skip", default="", help="steps to leave out, comma-separated: " + ", ".join(STEP_LIMITS))
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/gpu-check-<device>-<date>.json)")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(STEP_LIMITS)
    if unknown:
        print(f"error: unknown step {', '.join(sorted(unknown))}; steps are {', '.join(STEP_LIMITS)}", file=sys.stderr)
        return 2
    missing = missing_modules()
    if missing:
        print(
            f"error: this interpreter ({sys.executable}) lacks {', '.join(missing)}; install them, or carry wheels to a machine "
            "without internet (docs/benchmarks.md, 'The device check')",
            file=sys.stderr,
        )
        return 2
    info = gpu_info()
    if not info:
        print("error: no CUDA GPU is visible to torch here; run the device check on a GPU machine or a Jetson", file=sys.stderr)
        return 2
    from tdpcr_edge.probe import device_info

    start = time.perf_counter()
    steps: dict[str, dict] = {}

    def left(step: str) -> float:
        return min(STEP_LIMITS[step], BUDGET_S - (time.perf_counter() - start))

    with tempfile.TemporaryDirectory() as tmp:
        build = Path(tmp) / "build"
        plan = [
            ("kernels", lambda: step_kernels(build, info["sm"], left("kernels"))),
            ("gpu-tests", lambda: step_pytest(["-m", "gpu", "tests"], left("gpu-tests"), {"TDPCR_KERNEL_DIR": str(build)})),
            (
                "bench_pgf",
                lambda: step_pytest(["benchmarks/bench_pgf.py", "--benchmark-only"], left("bench_pgf"), {"TDPCR_KERNEL_DIR": str(build)}),
            ),
            ("stream", lambda: step_stream(left("stream"))),
            ("bench_train", lambda: step_pytest(["benchmarks/bench_train.py", "--benchmark-only", "-k", "gpu"], left("bench_train"))),
            ("tensorrt", lambda: step_tensorrt(Path(tmp), left("tensorrt"))),
        ]
        for name, fn in plan:
            if name in skip:
                steps[name] = {"status": "skipped", "reason": "--skip"}
            elif left(name) < 20:
                steps[name] = {"status": "skipped", "reason": f"the check's {BUDGET_S} s budget is spent"}
            else:
                print(f"gpu-check: {name} ...", flush=True)
                try:
                    steps[name] = fn()
                except Exception as exc:  # one step's failure is recorded; the others still run
                    steps[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
            print(f"gpu-check: {name}: {steps[name]['status']}", flush=True)
    payload = {
        "suite": "gpu-check",
        "date": date.today().isoformat(),
        "device": {**device_info(), **info},
        "seconds": round(time.perf_counter() - start, 1),
        "steps": steps,
    }
    tag = re.sub(r"[^a-z0-9]+", "-", info["gpu"].lower()).strip("-")
    out = args.out or RESULTS / f"gpu-check-{tag}-{date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(payload, indent=2) + "\n")
    tmp_out.replace(out)
    print(f"wrote {out} ({payload['seconds']:.0f} s)")
    return 0 if all(s["status"] in ("ok", "skipped") for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
