"""TensorRT engines: everything that does not need TensorRT is tested for real here; the
end-to-end build is marked `trt` and skips where tensorrt is not installed."""

import importlib.util
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tdpcr_edge.backends import load_runner
from tdpcr_edge.backends.targets import list_profiles
from tdpcr_edge.backends.trt.compat import check_engine_compat, in_range, network_flags, parse_version, same_release
from tdpcr_edge.backends.trt.engine import (
    BuildOptions,
    build_engine,
    engine_record,
    match_profile,
    plan_trtexec,
    profile_shapes,
    trtexec_command,
)
from tdpcr_edge.backends.trt.gate import check_golden_tile, write_engine_folder
from tdpcr_edge.backends.trt.runner import TrtRunner, batches, io_buffers
from tdpcr_edge.contract import file_digests, read_engine_record
from tdpcr_edge.drift import parse_budget
from tdpcr_edge.errors import CheckpointError, ConfigError, DriftBudgetError, EngineMismatch, IntegrityError, MissingDependency
from tdpcr_edge.export import ExportOptions, run_export
from tdpcr_edge.verify import summary_line, verify

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, random_checkpoint):
    out = tmp_path_factory.mktemp("eng") / "art"
    run_export(ExportOptions(out=out, precision="fp16", checkpoint=random_checkpoint, tile=64, eval_tiles=2))
    return out


@pytest.fixture(scope="module")
def manifest(artifact):
    return json.loads((artifact / "manifest.json").read_text())


def record_for(manifest, trt="10.3.0.30", gpu=("Orin", "8.7"), plugin=None):
    return engine_record(manifest, "ab" * 32, trt, gpu[0], gpu[1], BuildOptions(tile=64, max_batch=4), plugin)


def test_profile_shapes(manifest):
    shapes = profile_shapes(manifest, 64, 4)
    assert shapes["optical"] == ((1, 13, 64, 64), (1, 13, 64, 64), (4, 13, 64, 64))
    assert shapes["sar"][2] == (4, 2, 64, 64)
    with pytest.raises(ConfigError, match="not a multiple of 4"):
        profile_shapes(manifest, 66, 1)
    with pytest.raises(ConfigError, match="max batch"):
        profile_shapes(manifest, 64, 0)


def test_trtexec_line(artifact, tmp_path):
    line = plan_trtexec(artifact, tmp_path / "eng", target="jetson-agx-orin-jp6", timing_cache="cache.bin")
    assert line.startswith("trtexec --onnx=") and "--stronglyTyped" in line
    assert "--maxShapes=optical:4x13x64x64,sar:4x2x64x64" in line and "workspace:4096M" in line
    assert "--timingCacheFile=cache.bin" in line and "dynamicPlugins" not in line
    with_plugin = trtexec_command(
        artifact / "model.onnx",
        tmp_path / "m.engine",
        profile_shapes(json.loads((artifact / "manifest.json").read_text()), 64, 1),
        BuildOptions(tile=64, plugin_lib="/opt/libtdpcr_trt_plugin.so"),
    )
    assert "--dynamicPlugins=/opt/libtdpcr_trt_plugin.so" in with_plugin and "--setPluginsToSerialize=" in with_plugin


def test_compatible_engine_passes(manifest):
    check_engine_compat(record_for(manifest), "10.3.0.26", "Orin", "8.7")  # patch releases differ: fine


@pytest.mark.parametrize(
    "runtime,match",
    [
        (("10.16.0", "Orin", "8.7"), r"built with TensorRT 10\.3\.0\.30 on Orin \(SM 8\.7\), but this is TensorRT 10\.16\.0"),
        (("10.3.0", "NVIDIA H100", "9.0"), r"built for TensorRT 10\.3\.0\.30 on Orin \(SM 8\.7\), but this GPU is .*H100 \(SM 9\.0\)"),
    ],
)
def test_mismatched_engine_is_refused(manifest, runtime, match):
    with pytest.raises(EngineMismatch, match=match) as info:
        check_engine_compat(record_for(manifest), *runtime)
    assert "rebuild it on this device with `tdpcr-edge build-engine`" in str(info.value)
    assert "\n" not in str(info.value)


def test_plugin_rules(manifest):
    rec = record_for(manifest, plugin="11" * 32)
    check_engine_compat(rec, "10.3", "Orin", "8.7", plugin_sha256="11" * 32)
    with pytest.raises(EngineMismatch, match="plugin library, which was not found"):
        check_engine_compat(rec, "10.3", "Orin", "8.7", plugin_sha256=None)
    with pytest.raises(EngineMismatch, match="another TDP_PGF plugin library"):
        check_engine_compat(rec, "10.3", "Orin", "8.7", plugin_sha256="22" * 32)


def test_engine_folder_errors(tmp_path, manifest):
    with pytest.raises(CheckpointError, match="engine.json: missing"):
        read_engine_record(tmp_path)
    (tmp_path / "engine.json").write_text(json.dumps(record_for(manifest)))
    with pytest.raises(CheckpointError, match="model.engine: missing"):
        read_engine_record(tmp_path)
    (tmp_path / "engine.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_engine_record(tmp_path)


def test_profile_matching():
    names = list_profiles()
    assert match_profile("8.7", "10.3.0", names).name in ("jetson-agx-orin-jp6", "jetson-orin-nano-jp6")
    assert match_profile("8.7", "10.16.1", names).name == "jetson-agx-orin-jp7"
    assert match_profile("11.0", "11.1.0", names).name == "jetson-thor-jp7"
    assert match_profile("9.0", "11.1.0", names).name == "x86-h100"
    assert match_profile("8.9", None, names).name == "x86-rtx"
    assert match_profile("7.5", "10.3", names) is None


def test_versions():
    assert parse_version("10.3.0.30") == (10, 3, 0, 30) and parse_version("11.1.0b1") == (11, 1, 0)
    assert same_release("10.3.0.30", "10.3.1") and not same_release("10.3", "10.16")
    assert in_range("10.16.0", "10.3", "11.99") and not in_range("10.2", "10.3", "11.99")
    v10 = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=1))
    v11 = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(PREFER_JIT_PYTHON_PLUGINS=1))
    assert network_flags(v10) == 2 and network_flags(v11) == 0


def test_buffer_plan(manifest):
    rec = record_for(manifest)
    bufs = {b.name: b for b in io_buffers(rec, batch=3)}
    assert bufs["optical"].shape == (3, 13, 64, 64) and bufs["optical"].is_input
    assert bufs["segmentation"].shape == (3, 6, 64, 64) and not bufs["segmentation"].is_input
    assert bufs["reliance"].nbytes == 3 * 64 * 64 * 4
    assert batches(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]


def test_trt_backend_needs_an_engine_folder(artifact):
    with pytest.raises(ConfigError, match="engine folder"):
        load_runner(artifact, backend="trt")


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here")
def test_trt_runner_without_tensorrt_says_what_to_install(tmp_path, manifest):
    (tmp_path / "model.engine").write_bytes(b"\x00")
    (tmp_path / "engine.json").write_text(json.dumps({**record_for(manifest), "files": file_digests(tmp_path)}))
    runner = load_runner(tmp_path, backend="trt")
    with pytest.raises(MissingDependency, match="tensorrt is not installed.*pip install tensorrt"):
        runner(np.zeros((1, 13, 64, 64), np.float32), np.zeros((1, 2, 64, 64), np.float32))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here")
def test_build_engine_cli_without_tensorrt(artifact, tmp_path):
    p = cli("build-engine", artifact, "--out", tmp_path / "eng")
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "pip install tensorrt" in lines[0]
    assert not (tmp_path / "eng").exists()


def test_build_engine_cli_bad_artifact(tmp_path):
    p = cli("build-engine", tmp_path, "--out", tmp_path / "eng")
    assert p.returncode == 2 and "manifest.json: missing" in p.stderr


def test_doctor_always_answers():
    p = cli("doctor")
    assert p.returncode == 0, p.stderr
    for item in ("torch", "onnxruntime", "tensorrt", "GPU", "libtdpcr_trt_plugin.so", "target profile"):
        assert item in p.stdout


def test_import_never_pulls_tensorrt_or_onnxruntime():
    code = (
        "import sys, tdpcr_edge; from tdpcr_edge import load_runner; print(sorted(m for m in ('tensorrt', 'onnxruntime', 'onnx', "
        "'pycuda', 'cuda') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_TRT, reason="tensorrt is not installed on this machine")
def test_engine_matches_onnxruntime(artifact, tmp_path):
    from tdpcr_edge.backends.trt.engine import build_engine

    build_engine(artifact, tmp_path / "eng")
    trt_runner = load_runner(tmp_path / "eng", backend="trt")
    ort_runner = load_runner(artifact, backend="ort")
    rng = np.random.default_rng(0)
    o, s = rng.random((2, 13, 64, 64), dtype=np.float32), rng.random((2, 2, 64, 64), dtype=np.float32)
    a, b = trt_runner(o, s), ort_runner(o, s)
    assert float(np.abs(a["reconstruction"] - b["reconstruction"]).max()) < 1e-2
    assert trt_runner.last_timing["compute_ms"] > 0


class Shifted:
    """A stand-in for an engine that computes something else: the artifact's ORT outputs, moved."""

    def __init__(self, artifact, shift):
        self.runner, self.shift = load_runner(artifact, backend="ort"), shift

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.runner.deactivate()

    def __call__(self, optical, sar):
        out = self.runner(optical, sar)
        return {**out, "reconstruction": np.clip(out["reconstruction"] + self.shift, 0, 1)}


def test_an_engine_record_without_digests_is_refused(manifest, tmp_path):
    (tmp_path / "model.engine").write_bytes(b"\x00")
    (tmp_path / "engine.json").write_text(json.dumps(record_for(manifest)))
    with pytest.raises(IntegrityError, match="records no digest of model.engine; rebuild it"):
        TrtRunner(tmp_path)  # the runner's own check, which build-engine's gate relies on


def test_engine_gate_writes_the_folder_with_digests_and_drift(artifact, manifest, tmp_path):
    out = tmp_path / "eng"
    record = write_engine_folder(
        out, artifact, b"serialised engine", record_for(manifest), parse_budget(None), lambda f: Shifted(artifact, 0.0)
    )
    on_disk = read_engine_record(out)
    assert on_disk["drift"]["within_budget"] and abs(on_disk["drift"]["psnr_delta"]) < 0.01 and on_disk == record
    assert {"model.engine", "golden/golden.npz", "golden/inputs.json", "golden/outputs.json"} == set(on_disk["files"])
    assert on_disk["golden"] == manifest["golden"]  # export's record, beside the engine's own drift
    # verify on the engine folder, through its runner seam: build-engine's drift and export's beside it.
    r = verify(out, make_runner=lambda f: Shifted(artifact, 0.0))
    assert r["kind"] == "engine" and r["built"]["psnr_delta"] == on_disk["drift"]["psnr_delta"]
    assert r["exported"]["golden"] == manifest["golden"]["drift"] and "build-engine" in summary_line(r)
    # The runner checks the engine's digest before TensorRT is imported or sees the file.
    (out / "model.engine").write_bytes(b"serialised engine, changed")
    with pytest.raises(IntegrityError, match=r"model\.engine: its sha256 is not the one engine\.json records"):
        TrtRunner(out)


def test_engine_over_budget_on_the_golden_set_writes_nothing(artifact, manifest, tmp_path):
    out = tmp_path / "eng"
    with pytest.raises(DriftBudgetError, match="engine's drift on the golden set over budget: psnr"):
        write_engine_folder(out, artifact, b"engine", record_for(manifest), parse_budget(None), lambda f: Shifted(artifact, 0.05))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_build_engine_checks_the_artifact_before_anything(artifact, tmp_path):
    import shutil

    art = tmp_path / "art"
    shutil.copytree(artifact, art)
    (art / "model.onnx").write_bytes((art / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"model\.onnx: its sha256"):
        build_engine(art, tmp_path / "eng")
    with pytest.raises(IntegrityError, match=r"model\.onnx: its sha256"):
        plan_trtexec(art, tmp_path / "eng")
    assert not (tmp_path / "eng").exists()


def test_build_engine_needs_golden_tiles_at_the_engine_tile(artifact, manifest):
    check_golden_tile(artifact, manifest)
    with pytest.raises(ConfigError, match="golden tiles are 64 px, the engine will run 256 px tiles; export it with --target"):
        check_golden_tile(artifact, {**manifest, "tile": 256})
    with pytest.raises(ConfigError, match="no golden set"):
        check_golden_tile(artifact, {k: v for k, v in manifest.items() if k != "golden"})
