"""CPU deployment: the CPU's ISA, the x86-cpu profile, the OpenVINO backend (fidelity,
BF16, threads, model cache, errors), the CPU INT8 placement and exports gated on OpenVINO."""

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tdpcr_edge.backends import load_runner, resolve_backend
from tdpcr_edge.backends.openvino_runner import OpenVinoRunner
from tdpcr_edge.backends.targets import load_profile
from tdpcr_edge.backends.trt.engine import plan_trtexec
from tdpcr_edge.contract import file_digests, file_sha256
from tdpcr_edge.data.sources import SyntheticSource
from tdpcr_edge.errors import CheckpointError, ConfigError, MissingDependency
from tdpcr_edge.export import ExportOptions, run_export
from tdpcr_edge.export.signs import non_negative_tensors
from tdpcr_edge.probe import CpuIsa, cpu_isa
from tests.helpers import run_main

ov = pytest.importorskip("openvino", reason="openvino is in the default install; this environment lacks it")
TILE = 64


def isa(*flags, machine="x86_64"):
    return CpuIsa("Test CPU", machine, frozenset(flags))


def test_isa_features_from_cpuinfo_flags():
    xeon = isa("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
    assert xeon.features == {"AVX2": True, "AVX-512": True, "VNNI": True, "AVX512_BF16": True, "AMX": True}
    assert xeon.native_bf16 and xeon.int8_dot
    epyc_avx2 = isa("avx2", "fma")
    assert not epyc_avx2.native_bf16 and not epyc_avx2.int8_dot
    assert epyc_avx2.summary() == "AVX2"
    assert isa("avx2", "avx_vnni").has("VNNI")  # the VEX-encoded VNNI of client CPUs counts
    arm = isa("asimd", "asimddp", "bf16", machine="aarch64")
    assert arm.native_bf16 and arm.int8_dot and "NEON" in arm.features
    assert isa().summary().startswith("none of")
    with pytest.raises(KeyError):
        xeon.has("SSE9")
    here = cpu_isa()
    assert here.model and set(here.features) in (
        {"AVX2", "AVX-512", "VNNI", "AVX512_BF16", "AMX"},
        {"NEON", "DOTPROD", "I8MM", "BF16", "SVE"},
    )


def test_x86_cpu_profile_picks_the_precision_from_the_isa():
    p = load_profile("x86-cpu")
    assert p.is_cpu and p.backend == "openvino" and p.default_int8_placement == "cpu"
    assert p.precision_for(isa("avx2", "avx512_vnni", "amx_bf16"))[0] == "bf16"
    assert p.precision_for(isa("avx2", "avx512_vnni", "avx512_bf16")) == ("int8", "this CPU has VNNI")
    # Without VNNI, INT8's 16-bit intermediate sums would saturate: 7-bit activations that cannot.
    assert p.precision_for(isa("avx2")) == ("int8", "this CPU has AVX2")
    assert p.int8_placement_for(isa("avx2")) == "cpu-no-vnni"
    assert p.int8_placement_for(isa("avx2", "avx512_vnni")) == "cpu"
    assert p.precision_for(isa("sse4_2"))[0] == "fp32"
    # TensorRT profiles have one precision whatever the host.
    assert load_profile("jetson-orin-nano-jp6").precision_for(isa("amx_bf16"))[0] == "mixed"


def test_build_engine_refuses_a_cpu_profile(fp32_artifact, tmp_path):
    with pytest.raises(ConfigError, match="CPU profile"):
        plan_trtexec(fp32_artifact, tmp_path / "eng", target="x86-cpu")


@pytest.fixture(scope="module")
def fp32_artifact(tmp_path_factory, random_checkpoint):
    out = tmp_path_factory.mktemp("ov") / "fp32"
    run_export(ExportOptions(out=out, precision="fp32", checkpoint=random_checkpoint, tile=TILE, eval_tiles=1))
    return out


@pytest.fixture(scope="module")
def tiles():
    return SyntheticSource(5).scenes(2, TILE)


def batch(tiles):
    return np.stack([t.optical for t in tiles]), np.stack([t.sar for t in tiles])


def test_openvino_f32_matches_onnx_runtime(fp32_artifact, tiles):
    optical, sar = batch(tiles)
    ref = load_runner(fp32_artifact, backend="ort")(optical, sar)
    runner = load_runner(fp32_artifact, backend="openvino")
    assert runner.inference_precision == "f32"
    out = runner(optical, sar)
    for k in ("reconstruction", "segmentation", "reliance"):
        assert out[k].shape == ref[k].shape and out[k].dtype == np.float32
        assert np.abs(out[k] - ref[k]).max() < 1e-4, k
    # Edge tiles are padded and cropped like every backend's; results must not alias the request's buffers.
    odd = runner(optical[:1, :, :50, :37], sar[:1, :, :50, :37])
    assert odd["reconstruction"].shape == (1, 13, 50, 37)
    again = runner(optical, sar)
    assert np.array_equal(again["reconstruction"], out["reconstruction"])


@pytest.mark.skipif(not cpu_isa().native_bf16, reason="this CPU computes BF16 natively with neither AMX nor AVX512_BF16")
def test_bf16_runs_in_bf16(fp32_artifact, tiles):
    optical, sar = batch(tiles)
    f32 = OpenVinoRunner(fp32_artifact / "model.onnx", json.loads((fp32_artifact / "manifest.json").read_text())["model"])(optical, sar)
    bf16 = OpenVinoRunner(
        fp32_artifact / "model.onnx", json.loads((fp32_artifact / "manifest.json").read_text())["model"], inference_precision="bf16"
    )(optical, sar)
    err = np.abs(bf16["reconstruction"] - f32["reconstruction"]).max()
    assert 0 < err < 0.1  # rounded to BF16's 8-bit mantissa: not the f32 result, not far from it


def test_bf16_refused_where_the_cpu_lacks_it(fp32_artifact, monkeypatch):
    import tdpcr_edge.backends.openvino_runner as ovr

    monkeypatch.setattr(ovr, "cpu_isa", lambda: isa("avx2", "fma"))
    with pytest.raises(ConfigError, match="BF16 needs a CPU that computes it natively.*has AVX2"):
        OpenVinoRunner(
            fp32_artifact / "model.onnx", {"widths": [16, 32, 64], "optical_bands": 13, "sar_bands": 2}, inference_precision="bf16"
        )


def test_concurrent_calls_share_one_compiled_model(fp32_artifact, tiles):
    optical, sar = batch(tiles)
    runner = load_runner(fp32_artifact, backend="openvino")
    assert runner.share_cpu(2) == 2
    assert runner.compile_config()["NUM_STREAMS"] == "2"
    serial = [runner(optical[i : i + 1], sar[i : i + 1]) for i in range(2)]
    results = [None, None]

    def call(i):
        results[i] = runner(optical[i : i + 1], sar[i : i + 1])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert np.abs(results[i]["reconstruction"] - serial[i]["reconstruction"]).max() < 1e-5


def test_compiled_model_is_cached(fp32_artifact, tmp_path, tiles):
    optical, sar = batch(tiles)
    first = load_runner(fp32_artifact, backend="openvino", cache=tmp_path / "cache")
    first(optical[:1], sar[:1])
    assert list((tmp_path / "cache").iterdir()), "OpenVINO wrote no cache entry"
    assert not first.loaded_from_cache
    second = load_runner(fp32_artifact, backend="openvino", cache=tmp_path / "cache")
    out = second(optical[:1], sar[:1])
    assert second.loaded_from_cache
    # OpenVINO's cache keeps the graph, not the precision: a BF16 runner loaded from an entry
    # written in f32 must still compute in BF16.
    if cpu_isa().native_bf16:
        cached = load_runner(fp32_artifact, backend="openvino", cache=tmp_path / "cache", inference_precision="bf16")
        fresh = load_runner(fp32_artifact, backend="openvino", cache="", inference_precision="bf16")
        assert np.array_equal(cached(optical[:1], sar[:1])["reconstruction"], fresh(optical[:1], sar[:1])["reconstruction"])
        assert not np.array_equal(cached(optical[:1], sar[:1])["reconstruction"], out["reconstruction"])
    assert np.array_equal(out["reconstruction"], first(optical[:1], sar[:1])["reconstruction"])


def test_plugin_graph_refused_in_one_line(tmp_path, random_checkpoint):
    from tdpcr_edge.export.onnx_graph import export_onnx
    from tdpcr_edge.train.checkpoint import load_checkpoint

    ck = load_checkpoint(random_checkpoint)
    proto = export_onnx(ck.build(), tile=TILE, plugin=True)
    with pytest.raises(ConfigError, match="TDP_PGF plugin nodes.*without --plugin"):
        OpenVinoRunner(proto, ck.config.to_dict()).activate()


def _uncompilable(artifact, out):
    """A copy of ``artifact`` whose graph OpenVINO has no conversion for (an op from a domain it does not know), its
    digests recorded anew so that OpenVINO, not the digest check, is what refuses it."""
    shutil.copytree(artifact, out)
    proto = onnx.load(str(out / "model.onnx"))
    relu = next(n for n in proto.graph.node if n.op_type in ("Relu", "Clip", "Add"))
    relu.domain = "com.example.unknown"
    proto.opset_import.append(helper.make_opsetid("com.example.unknown", 1))
    onnx.save(proto, str(out / "model.onnx"))
    m = json.loads((out / "manifest.json").read_text())
    m["files"], m["onnx_sha256"] = file_digests(out), file_sha256(out / "model.onnx")
    (out / "manifest.json").write_text(json.dumps(m))
    return out


def test_uncompilable_graph_is_one_line(fp32_artifact, tmp_path):
    bad = _uncompilable(fp32_artifact, tmp_path / "bad")
    with pytest.raises(CheckpointError) as err:
        load_runner(bad, backend="openvino").activate()
    msg = str(err.value)
    assert "\n" not in msg and "cannot compile this graph" in msg and "--backend ort" in msg


def test_cli_errors_exit_2_and_write_nothing(fp32_artifact, tmp_path, scene_dir, capsys, monkeypatch):
    scene = sorted(scene_dir.glob("scene_*"))[0]
    common = ["--optical", scene / "optical_cloudy.tif", "--sar", scene / "sar.tif"]
    bad = _uncompilable(fp32_artifact, tmp_path / "bad")
    broken = run_main(["infer", "--model", bad, "--backend", "openvino", "--out", tmp_path / "b", *common], capsys, monkeypatch)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "openvino", None)
        missing = run_main(
            ["infer", "--model", fp32_artifact, "--backend", "openvino", "--out", tmp_path / "a", *common], capsys, monkeypatch
        )
    for (code, _, err), out, words in ((missing, "a", "pip install 'tdpcr-edge[openvino]'"), (broken, "b", "cannot compile this graph")):
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and words in lines[0], err
        assert not (tmp_path / out).exists()
    # The package and its other backends import without openvino.
    ok = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['openvino'] = None; import tdpcr_edge, tdpcr_edge.cli; "
            "from tdpcr_edge.bench.matrix import unavailable, Combo; print(unavailable(Combo('openvino', 'fp32')))",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "openvino is not installed" in ok.stdout


def test_missing_openvino_is_a_missing_dependency(monkeypatch, fp32_artifact):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(MissingDependency, match="pip install"):
        load_runner(fp32_artifact, backend="openvino").activate()


def test_non_negative_tensors_by_structure():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),  # Clip(0, 6): non-negative
        helper.make_node("Clip", ["x", "neg", "hi"], ["s"]),  # Clip(-6, 6): signed
        helper.make_node("Concat", ["r", "c"], ["cat"], axis=1),  # of non-negatives
        helper.make_node("Concat", ["r", "s"], ["mix"], axis=1),  # one signed input
        helper.make_node("Add", ["cat", "optical"], ["sum"]),  # the normalised input is in [0, 1]
        helper.make_node("Sub", ["r", "c"], ["diff"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", 0.0), ("hi", 6.0), ("neg", -6.0))]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    graph = helper.make_graph(nodes, "g", [vi("x"), vi("optical")], [vi(n) for n in ("sum", "mix", "diff", "s")], inits)
    found = non_negative_tensors(helper.make_model(graph))
    assert {"r", "c", "cat", "optical", "lo", "hi"} <= found
    assert not found & {"x", "s", "mix", "diff", "neg"}


@pytest.fixture(scope="module")
def cpu_int8(tmp_path_factory, random_checkpoint):
    out = tmp_path_factory.mktemp("ov") / "int8-cpu"
    m = run_export(
        ExportOptions(
            out=out,
            precision="int8",
            target="x86-cpu",
            checkpoint=random_checkpoint,
            tile=TILE,
            eval_tiles=2,
            calib_tiles=2,
            allow_drift=True,
        )
    )
    return out, m


def test_cpu_target_export_is_gated_on_openvino(cpu_int8):
    out, m = cpu_int8
    assert m["target"] == "x86-cpu" and m["precision"] == "int8" and m["precision"] != "bf16"
    assert m["runtime"]["backend"] == "openvino" and m["drift"]["backend"] == "openvino"
    assert m["runtime"]["precision_chosen_by"] == "--precision"
    assert m["calibration"]["placement"] == "cpu"
    assert resolve_backend(out) == "openvino"
    assert isinstance(load_runner(out, backend="auto"), OpenVinoRunner)


def test_cpu_placement_reads_unsigned_activations(cpu_int8):
    out, _ = cpu_int8
    proto = onnx.load(str(out / "model.onnx"))
    zps = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer if i.name.endswith("zero_point")}
    unsigned = [z for z in zps.values() if z.dtype == np.uint8]
    assert unsigned and all(int(z.max()) == 0 for z in unsigned)  # zero point 0: the grid starts at the data's minimum, 0
    # Weights stay symmetric INT8, per output channel.
    assert any(z.dtype == np.int8 and z.ndim == 1 for z in zps.values())
    with pytest.raises(ConfigError, match="UINT8 activations"):
        plan_trtexec(out, out.parent / "engine")


def test_export_option_conflicts(tmp_path, random_checkpoint):
    with pytest.raises(ConfigError, match="bf16 is the FP32 graph computed in BF16 by OpenVINO"):
        run_export(ExportOptions(out=tmp_path / "a", precision="bf16", backend="ort", checkpoint=random_checkpoint, tile=TILE))
    with pytest.raises(ConfigError, match="TensorRT does not take"):
        run_export(
            ExportOptions(
                out=tmp_path / "b",
                precision="int8",
                target="jetson-orin-nano-jp6",
                int8_placement="cpu",
                checkpoint=random_checkpoint,
                tile=TILE,
            )
        )
    with pytest.raises(ConfigError, match="measured on ort or openvino"):
        run_export(ExportOptions(out=tmp_path / "c", precision="fp32", backend="trt", checkpoint=random_checkpoint, tile=TILE))
    assert not any(tmp_path.iterdir())


def test_ort_refuses_a_bf16_artifact(tmp_path, fp32_artifact):
    bf16 = tmp_path / "bf16"
    shutil.copytree(fp32_artifact, bf16)
    m = json.loads((bf16 / "manifest.json").read_text())
    m["precision"] = "bf16"
    (bf16 / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ConfigError, match="pass --backend openvino"):
        load_runner(bf16, backend="ort")
    if cpu_isa().native_bf16:
        assert load_runner(bf16, backend="openvino").inference_precision == "bf16"


def test_onednn_isa_cap_narrows_the_features(monkeypatch):
    import tdpcr_edge.probe as ci
    from tdpcr_edge.bench.matrix import Combo, unavailable

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    ci.cpu_isa.cache_clear()
    try:
        capped = ci.cpu_isa()
        assert not capped.native_bf16 and not capped.has("AVX-512") and not capped.has("AMX")
        # ONNX Runtime's own kernels ignore the cap, so its rows would not show an AVX2 CPU.
        assert "ignore ONEDNN_MAX_CPU_ISA" in unavailable(Combo("ort", "fp32"))
        assert unavailable(Combo("openvino", "bf16")) is not None
    finally:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        ci.cpu_isa.cache_clear()


def test_the_runner_leaves_the_signal_stack_as_it_found_it(fp32_artifact):
    """OpenVINO's CPU plugin replaces the thread's alternate signal stack when it compiles and
    can leave it dangling; a later Python-handled signal (Ctrl-C, a DataLoader's SIGCHLD) then
    killed the process with SIGSEGV. In a fresh interpreter: the runner keeps the stack as it
    was, and signals handled after it was closed arrive safely."""
    import subprocess
    import sys

    code = f"""
import signal, subprocess
from tdpcr_edge.backends.signal_stack import current_signal_stack
from tdpcr_edge.backends.factory import load_runner
before = current_signal_stack()
for _ in range(3):
    r = load_runner({str(fp32_artifact)!r}, backend="openvino")
    with r:
        r.activate()
assert current_signal_stack() == before, (before, current_signal_stack())
signal.signal(signal.SIGCHLD, lambda *a: None)
for _ in range(20):
    subprocess.run(["true"])
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_an_artifact_runs_on_openvino_without_importing_onnx(fp32_artifact, tiles):
    """OpenVINO reads the artifact's model.onnx itself: importing onnx took about a second of
    a CLI stream's start. A fresh process loads, runs and compares with this one's result."""
    optical, sar = batch(tiles)
    here = load_runner(fp32_artifact, backend="openvino")(optical, sar)["reconstruction"]
    code = (
        "import sys, numpy as np; from tdpcr_edge.backends import load_runner\n"
        f"r = load_runner({str(fp32_artifact)!r}, backend='openvino')\n"
        "o, s = np.load(sys.argv[1]), np.load(sys.argv[2])\n"
        "np.save(sys.argv[3], r(o, s)['reconstruction']); print('onnx' in sys.modules)"
    )
    d = fp32_artifact.parent / "no-onnx"
    d.mkdir(exist_ok=True)
    np.save(d / "o.npy", optical), np.save(d / "s.npy", sar)
    done = subprocess.run(
        [sys.executable, "-c", code, str(d / "o.npy"), str(d / "s.npy"), str(d / "r.npy")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    np.testing.assert_array_equal(np.load(d / "r.npy"), here)
