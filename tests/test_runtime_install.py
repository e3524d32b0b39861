"""The runtime install: the wheel in a fresh virtual environment with its runtime dependencies
and the CPU backends (ONNX Runtime, OpenVINO), without torch, runs `infer` on an artifact
exported by the full install and `check --target x86-cpu`, with the outputs of the full
install, and `verify`s every precision with the drift export measured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import make_scene

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime-install")
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "wheel")])
    wheel = next((root / "wheel").glob("tdpcr_edge-*.whl"))
    _run([sys.executable, "-m", "venv", str(root / "venv")])
    py = root / "venv" / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[ort,openvino]"])
    return root, py


@pytest.mark.slow
def test_runtime_install_runs_an_artifact_without_torch(runtime_env, tmp_path):
    from tdpcr_edge.export import ExportOptions, run_export
    from tdpcr_edge.stream import StreamOptions, run_stream

    root, py = runtime_env
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0
    assert subprocess.run([str(py), "-c", "import torchmetrics"], capture_output=True).returncode != 0
    art = tmp_path / "art"
    run_export(ExportOptions(out=art, precision="int8", calib_tiles=4, eval_tiles=2))
    scene = tmp_path / "scene"
    write_scene(scene, make_scene(3, 0, (300, 280)))
    args = [
        "--model",
        str(art),
        "--optical",
        str(scene / FILES["optical"]),
        "--sar",
        str(scene / FILES["sar"]),
        "--tile",
        "128",
        "--overlap",
        "16",
    ]
    run_stream(
        StreamOptions(
            optical=scene / FILES["optical"],
            sar=scene / FILES["sar"],
            out=tmp_path / "full",
            model=str(art),
            tile=128,
            overlap=16,
            quicklook=False,
        )
    )
    cli = root / "venv" / "bin" / "tdpcr-edge"
    # Run from elsewhere, so the repository's own package is not the one imported.
    _run([str(cli), "infer", *args, "--out", str(tmp_path / "runtime")], cwd=tmp_path)
    for name in ("reconstruction.tif", "classes.tif", "confidence.tif"):
        with rasterio.open(tmp_path / "full" / name) as a, rasterio.open(tmp_path / "runtime" / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    done = _run([str(cli), "check", "--target", "x86-cpu", str(art)], cwd=tmp_path)
    assert "x86-cpu" in done.stdout
    # The shipped model without --model: its packaged FP32 artifact.
    _run(
        [
            str(cli),
            "infer",
            "--optical",
            str(scene / FILES["optical"]),
            "--sar",
            str(scene / FILES["sar"]),
            "--out",
            str(tmp_path / "shipped"),
        ],
        cwd=tmp_path,
    )
    assert (tmp_path / "shipped" / "reconstruction.tif").exists()
    # A command that needs torch: one line with the pip line, exit 2.
    done = subprocess.run([str(cli), "train", "--out", str(tmp_path / "t")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "pip install 'tdpcr-edge[train]'" in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
        done.stderr
    )
    where = _run([str(py), "-c", "import tdpcr_edge; print(tdpcr_edge.__file__)"], cwd=tmp_path).stdout
    assert str(root) in where


@pytest.mark.slow
def test_runtime_install_verifies_every_precision(runtime_env, tmp_path):
    import json

    from tdpcr_edge.contract import read_manifest
    from tdpcr_edge.export import ExportOptions, run_export

    root, py = runtime_env
    cli = root / "venv" / "bin" / "tdpcr-edge"
    for precision, backend in (("fp32", "openvino"), ("fp16", "ort"), ("int8", "ort"), ("mixed", "ort")):
        art = tmp_path / precision
        run_export(ExportOptions(out=art, precision=precision, backend=backend, tile=64, eval_tiles=4, calib_tiles=4))
        _run([str(cli), "verify", str(art), "--json", str(tmp_path / f"{precision}.json")], cwd=tmp_path)
        r, exported = json.loads((tmp_path / f"{precision}.json").read_text()), read_manifest(art)["golden"]["drift"]
        assert r["backend"] == backend and r["within_budget"]
        assert abs(r["psnr_delta"] - exported["psnr_delta"]) < 0.02, (precision, r["psnr_delta"], exported["psnr_delta"])
        assert abs(r["miou_delta"] - exported["miou_delta"]) < 0.1, (precision, r["miou_delta"], exported["miou_delta"])
    # compare: the golden set is the reference where torch is not.
    done = _run([str(cli), "compare", str(tmp_path / "fp16"), str(tmp_path / "int8")], cwd=tmp_path)
    assert "golden" in done.stdout and "fp16" in done.stdout
    # bench over those artifacts, every installed backend, the report the full bench writes.
    report = tmp_path / "report"
    _run(
        [str(cli), "bench", "--artifacts", str(tmp_path), "--report", str(report), "--tile", "64", "--tiles", "2", "--iterations", "4"],
        cwd=tmp_path,
    )
    rows = json.loads((report / "report.json").read_text())["rows"]
    assert {(r["backend"], r["precision"]) for r in rows} >= {("ort", p) for p in ("fp32", "fp16", "int8", "mixed")}
    assert all(r["latency_ms_p50"] > 0 and r["psnr"] > 0 for r in rows)
    assert (report / "report.md").exists() and (report / "report.png").exists()
    # A graph changed after export: one line naming it, exit 2, in the runtime install too.
    (tmp_path / "int8" / "model.onnx").write_bytes((tmp_path / "int8" / "model.onnx").read_bytes() + b"\0")
    done = subprocess.run([str(cli), "verify", str(tmp_path / "int8")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "model.onnx" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_runtime_modules_import_no_torch():
    """What a runtime install imports (the package, the CLI, the stream, the artifact and
    engine runners, doctor) pulls in neither torch nor torchmetrics."""
    code = (
        "import sys, tdpcr_edge, tdpcr_edge.cli, tdpcr_edge.doctor, tdpcr_edge.stream, tdpcr_edge.backends.ort_runner, "
        "tdpcr_edge.backends.openvino_runner, tdpcr_edge.backends.trt.runner, tdpcr_edge.archive.run, tdpcr_edge.backends.targets, "
        "tdpcr_edge.model.registry, tdpcr_edge.train.options, tdpcr_edge.scoring, tdpcr_edge.stream.scene_metrics, tdpcr_edge.verify, "
        "tdpcr_edge.golden, tdpcr_edge.signing\n"
        "from tdpcr_edge.cli import build_app; build_app()\n"
        "print(sorted(m for m in ('torch', 'torchmetrics') if m in sys.modules))"
    )
    done = _run([sys.executable, "-c", code], cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout


def test_packaged_artifact_is_the_shipped_checkpoint():
    """The FP32 artifact inside the package is the shipped checkpoint's export: same digest,
    same outputs (within FP32 rounding) as torch on a tile."""
    from tdpcr_edge.backends import load_runner
    from tdpcr_edge.contract import default_checkpoint_path, file_sha256, read_manifest, shipped_artifact_path
    from tdpcr_edge.data.sources import SyntheticSource

    art = shipped_artifact_path()
    manifest = read_manifest(art)
    assert manifest["precision"] == "fp32" and manifest["checkpoint"]["sha256"] == file_sha256(default_checkpoint_path())
    assert file_sha256(art / "model.onnx") == manifest["onnx_sha256"]
    tile = SyntheticSource(11).scenes(1, manifest["tile"])[0]
    a = load_runner(None, backend="torch")(tile.optical[None], tile.sar[None])
    b = load_runner(art, backend="ort")(tile.optical[None], tile.sar[None])
    assert float(np.abs(a["reconstruction"] - b["reconstruction"]).max()) < 1e-4


def test_a_missing_extra_is_one_line_with_its_pip_line():
    from tdpcr_edge.errors import MissingDependency, missing_module

    err = missing_module(ModuleNotFoundError("No module named 'torch'", name="torch"), "tdpcr-edge train")
    assert (
        isinstance(err, MissingDependency)
        and str(err) == "tdpcr-edge train needs torch, which is not installed in this environment; pip install 'tdpcr-edge[train]'"
    )
    assert (
        missing_module(ModuleNotFoundError("No module named 'onnxruntime.capi'", name="onnxruntime.capi"))
        .args[0]
        .endswith("pip install 'tdpcr-edge[ort]'")
    )
    assert missing_module(ModuleNotFoundError("x", name="some_private_module")) is None  # a broken install keeps its traceback
