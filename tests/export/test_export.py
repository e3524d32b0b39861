"""Export: ONNX fidelity, the plugin-node graph on CPU, precision passes, the drift gate,
manifests and the artifact contract."""

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from tdpcr_edge.backends import load_runner
from tdpcr_edge.backends.ort_runner import OrtRunner
from tdpcr_edge.backends.targets import list_profiles, load_profile
from tdpcr_edge.backends.torch_runner import TorchRunner
from tdpcr_edge.data.sources import SyntheticSource
from tdpcr_edge.drift import parse_budget
from tdpcr_edge.errors import ConfigError, DataError, DriftBudgetError
from tdpcr_edge.export import ExportOptions, compare_artifacts, run_export
from tdpcr_edge.export.fp16 import to_fp16
from tdpcr_edge.export.onnx_graph import export_onnx
from tdpcr_edge.export.quantizer import Int8Quantizer
from tdpcr_edge.precisions import get as check_precision
from tdpcr_edge.train.checkpoint import load_checkpoint

TILE = 64


def tiles(n, size=TILE, seed=5):
    return SyntheticSource(seed).scenes(n, size)


@pytest.fixture(scope="module")
def ckpt(random_checkpoint):
    return load_checkpoint(random_checkpoint)


@pytest.fixture(scope="module")
def plain(ckpt):
    return export_onnx(ckpt.build(), tile=TILE)


@pytest.fixture(scope="module")
def plugin(ckpt):
    return export_onnx(ckpt.build(), tile=TILE, plugin=True)


def run(proto, ckpt, scene):
    return OrtRunner(proto, ckpt.config.to_dict())(scene.optical[None], scene.sar[None])


def test_graph_io_names_and_dynamic_axes(plain):
    assert [i.name for i in plain.graph.input] == ["optical", "sar"]
    assert [o.name for o in plain.graph.output] == ["reconstruction", "segmentation", "reliance"]
    dims = [d.dim_param or d.dim_value for d in plain.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == 13 and isinstance(dims[2], str) and isinstance(dims[3], str)


def test_ort_fp32_matches_torch_on_other_sizes(plain, ckpt, random_checkpoint):
    torch_runner = TorchRunner(random_checkpoint)
    ort_runner = OrtRunner(plain, ckpt.config.to_dict())
    rng = np.random.default_rng(0)
    for shape in [(3, 96, 64), (1, 30, 41)]:  # batch and tile differ from the export example
        o = rng.random((shape[0], 13, *shape[1:]), dtype=np.float32)
        s = rng.random((shape[0], 2, *shape[1:]), dtype=np.float32)
        a, b = torch_runner(o, s), ort_runner(o, s)
        for k in a:
            assert a[k].shape == b[k].shape
            assert float(np.abs(a[k] - b[k]).max()) < 1e-4, k


def test_plugin_graph_has_one_node_per_scale_and_matches_plain(plugin, plain, ckpt):
    nodes = [n for n in plugin.graph.node if n.op_type == "TDP_PGF"]
    assert len(nodes) == len(ckpt.config.widths)
    for n in nodes:
        assert n.domain == "tdpcr"
        attrs = {a.name: a.s.decode() for a in n.attribute}
        assert attrs == {"plugin_version": "1", "plugin_namespace": ""}
        assert len(n.input) == 7 and len(n.output) == 2
    assert not any(n.op_type == "Einsum" for n in plugin.graph.node)
    for scene in tiles(2):
        a, b = run(plain, ckpt, scene), run(plugin, ckpt, scene)
        for k in a:
            assert float(np.abs(a[k] - b[k]).max()) < 1e-5, k


def test_fp16_is_explicit_and_keeps_sensitive_nodes_fp32(plain, ckpt):
    p16 = to_fp16(plain)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in p16.graph.output)
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in p16.graph.input)
    assert sum(n.op_type == "Cast" for n in p16.graph.node) > 0
    inits = {i.name: i for i in p16.graph.initializer}
    conv_weights = [inits[n.input[1]] for n in p16.graph.node if n.op_type == "Conv" and n.input[1] in inits]
    assert conv_weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in conv_weights)
    # The residual that forms the reconstruction stays FP32: its producer is not fed by a cast to FP16.
    # The nodes that form the reconstruction (residual add, clip) compute in FP32 on FP32
    # inputs, and produce the output themselves: no Cast back from FP16 sits at the output.
    from tdpcr_edge.backends.tdp_pgf_op import tensor_types
    from tdpcr_edge.export.fp16 import _reconstruction_tail

    tail = _reconstruction_tail(plain)
    nodes, types = {n.name: n for n in p16.graph.node}, tensor_types(p16)
    assert tail and all(name in nodes for name in tail)
    for name in tail:
        assert all(types.get(i) == onnx.TensorProto.FLOAT for i in nodes[name].input if i), name
    producers = {o: n for n in p16.graph.node for o in n.output}
    assert producers["reconstruction"].name in tail
    # The plain graph is untouched by the conversion.
    assert not any(n.op_type == "Cast" and any(a.i == onnx.TensorProto.FLOAT16 for a in n.attribute) for n in plain.graph.node)
    scene = tiles(1)[0]
    a, b = run(plain, ckpt, scene), run(p16, ckpt, scene)
    assert 0 < float(np.abs(a["reconstruction"] - b["reconstruction"]).max()) < 5e-3


def test_int8_is_qdq_per_channel_symmetric(plain):
    q = Int8Quantizer(plain, [(t.optical, t.sar) for t in tiles(4)], method="entropy")
    try:
        p8 = q.quantize()
    finally:
        q.close()
    inits = {i.name: numpy_helper.to_array(i) for i in p8.graph.initializer}
    qs = [n for n in p8.graph.node if n.op_type == "QuantizeLinear"]
    dqs = [n for n in p8.graph.node if n.op_type == "DequantizeLinear"]
    assert qs and dqs
    for n in dqs + qs:  # symmetric: every zero point is 0, INT8
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any()
    weight_dq = [n for n in dqs if n.input[0] in inits and inits[n.input[0]].ndim == 4]
    assert weight_dq
    for n in weight_dq:  # per channel: one scale per output channel
        assert inits[n.input[1]].shape == (inits[n.input[0]].shape[0],)
    # Q/DQ where TensorRT reads INT8, convolution inputs, and nowhere else: no convolution
    # output is rounded (the outputs are convolutions), and each activation pair feeds one
    # convolution, so elementwise consumers of the same tensor keep it in float.
    producers = {o: n for n in p8.graph.node for o in n.output}
    assert not [q.name for q in qs if q.input[0] in producers and producers[q.input[0]].op_type == "Conv"]
    consumers = {}
    for n in p8.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in dqs:
        if n not in weight_dq:
            assert {c.op_type for c in consumers[n.output[0]]} == {"Conv"}, n.name
    # The residual add reads the cloudy image itself, not its INT8 copy.
    add = producers[producers["reconstruction"].input[0]]
    assert "optical" in add.input, add.input


def fake_quantised(ckpt, scene):
    """``ckpt``'s model with INT8 simulated (train.qat), each step started from one tile as
    training starts it."""
    from tdpcr_edge.train.qat import enable_fake_quant

    model = ckpt.build()
    enable_fake_quant(model)
    with torch.no_grad():
        model(torch.from_numpy(scene.optical[None]), torch.from_numpy(scene.sar[None]))
    return model.eval()


def test_qat_ranges_replace_the_calibrated_ones(plain, ckpt, tmp_path):
    from tdpcr_edge.export.qat_ranges import qat_tensor_ranges
    from tdpcr_edge.train.checkpoint import save_checkpoint
    from tdpcr_edge.train.qat import fake_quant_ranges

    model = fake_quantised(ckpt, tiles(1)[0])
    ranges = {k: 3.0 * v for k, v in fake_quant_ranges(model).items()}  # unlike any calibration
    # PGF applies its spatial bias functionally, so training leaves it no range; give it one
    # here to check that every node, batch norm folded or not, finds its module.
    assert not any(k.endswith("spatial_bias") for k in ranges)
    ranges.update({k: 1.5 for k, m in model.named_modules() if k.endswith("spatial_bias")})
    by_tensor = qat_tensor_ranges(plain, ckpt.build(), ranges)
    conv_inputs = {n.input[0] for n in plain.graph.node if n.op_type == "Conv"}
    assert set(by_tensor) == conv_inputs
    q = Int8Quantizer(plain, [(t.optical, t.sar) for t in tiles(2)], ranges=by_tensor)
    try:
        p8 = q.quantize()
    finally:
        q.close()
    inits = {i.name: float(numpy_helper.to_array(i).ravel()[0]) for i in p8.graph.initializer if i.dims in ([], [1])}
    checked = 0
    for n in p8.graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] in by_tensor:
            assert inits[n.input[1]] == pytest.approx(by_tensor[n.input[0]] / 127, rel=1e-5), n.input[
                0
            ]  # symmetric: [-127, 127], as in training
            checked += 1
    assert checked >= len(conv_inputs)

    qat = load_checkpoint(ckpt.path)
    qat.qat_ranges = ranges
    save_checkpoint(tmp_path / "qat.pt", qat)
    m = run_export(
        ExportOptions(
            out=tmp_path / "art", precision="int8", checkpoint=tmp_path / "qat.pt", tile=TILE, eval_tiles=2, calib_tiles=2, allow_drift=True
        )
    )
    assert m["calibration"]["qat_ranges"] == len(conv_inputs)


def test_export_artifact_and_manifest(tmp_path, random_checkpoint):
    out = tmp_path / "art"
    m = run_export(
        ExportOptions(out=out, precision="fp16", checkpoint=random_checkpoint, tile=TILE, eval_tiles=4, target="jetson-agx-orin-jp6")
    )
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "drift.json", "golden", "manifest.json", "mlm.json", "model.onnx"]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    for key in (
        "schema_version",
        "model",
        "checkpoint",
        "opset",
        "precision",
        "inputs",
        "outputs",
        "normalization",
        "classes",
        "colors",
        "calibration",
        "drift",
        "versions",
        "target",
    ):
        assert key in m, key
    assert m["precision"] == "fp16" and m["tile"] == TILE and m["target"] == "jetson-agx-orin-jp6"
    assert m["inputs"][0] == {"name": "optical", "shape": ["batch", 13, "height", "width"], "dtype": "float32"}
    assert [o["name"] for o in m["outputs"]] == ["reconstruction", "segmentation", "reliance"]
    assert len(m["checkpoint"]["sha256"]) == 64 and m["versions"]["onnxruntime"]
    drift = json.loads((out / "drift.json").read_text())
    for key in ("psnr_delta", "ssim_delta", "sam_delta", "miou_delta", "max_abs_error", "mean_abs_error"):
        assert isinstance(drift[key], float) and key in m["drift"]
    assert drift["within_budget"] and drift["tiles"] == 4
    # Both backends load the artifact.
    scene = tiles(1)[0]
    a = load_runner(out, backend="torch")(scene.optical[None], scene.sar[None])
    b = load_runner(out, backend="ort")(scene.optical[None], scene.sar[None])
    assert float(np.abs(a["reconstruction"] - b["reconstruction"]).max()) < 5e-3
    rows = compare_artifacts([out], tiles=2)
    assert rows[0]["precision"] == "fp16" and rows[0]["tiles"] == 2 and rows[0]["over_budget"] == []


def test_impossible_budget_fails_and_writes_nothing(tmp_path, random_checkpoint):
    with pytest.raises(DriftBudgetError, match="over budget.*nothing written"):
        run_export(
            ExportOptions(
                out=tmp_path / "art",
                precision="int8",
                checkpoint=random_checkpoint,
                tile=TILE,
                eval_tiles=2,
                calib_tiles=2,
                drift_budget="max_abs=1e-9",
            )
        )
    assert list(tmp_path.iterdir()) == []
    m = run_export(
        ExportOptions(
            out=tmp_path / "art",
            precision="int8",
            checkpoint=random_checkpoint,
            tile=TILE,
            eval_tiles=2,
            calib_tiles=2,
            drift_budget="max_abs=1e-9",
            allow_drift=True,
        )
    )
    assert not m["drift"]["within_budget"] and (tmp_path / "art" / "model.onnx").exists()
    assert m["calibration"]["tiles"] == 2 and m["calibration"]["method"] == "percentile"


def test_mixed_is_pure_int8_without_ranking_layers_when_int8_meets_the_budget(tmp_path, random_checkpoint, monkeypatch):
    import tdpcr_edge.export.artifact as pipeline

    layer_calls = []
    real = Int8Quantizer.quantize
    monkeypatch.setattr(
        Int8Quantizer, "quantize", lambda self, nodes=None, exclude=None: layer_calls.append(nodes) or real(self, nodes, exclude)
    )
    measured = []
    real_drift = pipeline.measure_drift
    monkeypatch.setattr(pipeline, "measure_drift", lambda *a: measured.append(a[1]) or real_drift(*a))
    m = run_export(
        ExportOptions(
            out=tmp_path / "mixed",
            precision="mixed",
            checkpoint=random_checkpoint,
            tile=TILE,
            eval_tiles=2,
            calib_tiles=2,
            drift_budget="psnr=100,miou=100",
        )
    )
    assert m["fp16_fallback_layers"] == [] and m["layer_sensitivity"] is None
    assert layer_calls == [None]  # the full INT8 graph, once; no convolution quantised alone
    assert len(measured) == 1  # the graph mixed settled on is the graph shipped: its drift is measured once
    proto = onnx.load(str(tmp_path / "mixed" / "model.onnx"))
    weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    producers = {o: n for n in proto.graph.node for o in n.output}
    assert all(producers[w].op_type == "DequantizeLinear" for w in weights)


def test_mixed_falls_back_the_sensitive_layers_to_fp16(tmp_path, random_checkpoint):
    # A budget the full INT8 graph breaks but FP16 keeps: some layers must fall back.
    first = run_export(
        ExportOptions(
            out=tmp_path / "int8", precision="int8", checkpoint=random_checkpoint, tile=TILE, eval_tiles=2, calib_tiles=2, allow_drift=True
        )
    )
    budget = f"max_abs={first['drift']['max_abs_error'] / 3:.6g}"
    m = run_export(
        ExportOptions(
            out=tmp_path / "mixed",
            precision="mixed",
            checkpoint=random_checkpoint,
            tile=TILE,
            eval_tiles=2,
            calib_tiles=2,
            sensitivity_tiles=1,
            drift_budget=budget,
        )
    )
    fallback = m["fp16_fallback_layers"]
    assert fallback and m["drift"]["within_budget"]
    assert m["layer_sensitivity"] and max(m["layer_sensitivity"].values()) > 0
    proto = onnx.load(str(tmp_path / "mixed" / "model.onnx"))
    inits = {i.name: i for i in proto.graph.initializer}
    by_name = {n.name: n for n in proto.graph.node}
    producers = {o: n for n in proto.graph.node for o in n.output}
    for name in fallback:  # the fallback convolutions run FP16, not INT8, on an unrounded input
        w = by_name[name].input[1]
        assert w in inits and inits[w].data_type == onnx.TensorProto.FLOAT16
        cast = producers[by_name[name].input[0]]
        assert cast.op_type == "Cast" and producers.get(cast.input[0], cast).op_type != "DequantizeLinear", name


def test_option_errors(random_checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="unknown precision"):
        check_precision("int4")
    with pytest.raises(ConfigError, match="unknown target profile 'mars'"):
        run_export(ExportOptions(out=tmp_path / "a", target="mars"))
    with pytest.raises(DataError, match="data folder not found"):
        run_export(ExportOptions(out=tmp_path / "a", precision="int8", calib=str(tmp_path / "none"), checkpoint=random_checkpoint))
    with pytest.raises(ConfigError, match="unknown drift budget key"):
        parse_budget("psnr=0.3,speed=2")
    with pytest.raises(ConfigError, match="not a multiple"):
        run_export(ExportOptions(out=tmp_path / "a", checkpoint=random_checkpoint, tile=66))
    assert not (tmp_path / "a").exists()


def test_profiles_are_complete():
    names = list_profiles("tensorrt")
    assert {"jetson-orin-nano-jp6", "jetson-agx-orin-jp6", "jetson-agx-orin-jp7", "jetson-thor-jp7", "x86-rtx", "x86-h100"} <= set(names)
    assert list_profiles("cpu") == ["x86-cpu"] and set(list_profiles()) == set(names) | {"x86-cpu"}
    for name in names:
        p = load_profile(name)
        assert p.precision in ("fp32", "fp16", "int8", "mixed") and p.tile % 4 == 0 and p.gpu_sm >= 80
        assert tuple(map(int, p.tensorrt_min.split("."))) <= tuple(map(int, p.tensorrt_max.split(".")))
    assert load_profile("jetson-thor-jp7").gpu_sm == 110


def test_runner_contract(random_checkpoint, tmp_path):
    runner = load_runner(random_checkpoint, backend="torch")
    with runner:
        assert runner.is_active
        with pytest.raises(DataError, match="float32"):
            runner(np.zeros((1, 13, 8, 8), np.float64), np.zeros((1, 2, 8, 8), np.float32))
        with pytest.raises(DataError, match="N x 2 x H x W"):
            runner(np.zeros((1, 13, 8, 8), np.float32), np.zeros((1, 3, 8, 8), np.float32))
    assert not runner.is_active
    with pytest.raises(ConfigError, match="unknown backend"):
        load_runner(random_checkpoint, backend="tflite")
    with pytest.raises(ConfigError, match="artifact folder"):
        load_runner(random_checkpoint, backend="ort")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no manifest.json"):
        load_runner(tmp_path / "empty", backend="ort")


def test_ort_runner_in_a_fresh_interpreter(tmp_path, random_checkpoint):
    """The runtime imports export.plugin_op while export.compare imports the runtime: a
    fresh process that loads an ORT runner first must not hit an import cycle."""
    import subprocess
    import sys

    out = tmp_path / "art"
    run_export(ExportOptions(out=out, precision="fp32", checkpoint=random_checkpoint, tile=32, eval_tiles=1))
    code = (
        "import numpy as np\n"
        "from tdpcr_edge.backends import load_runner\n"
        f"r = load_runner({str(out)!r}, backend='ort')\n"
        "print(r(np.zeros((1, 13, 32, 32), np.float32), np.zeros((1, 2, 32, 32), np.float32))['reconstruction'].shape)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "(1, 13, 32, 32)" in p.stdout


def test_int8_graph_computes_what_quantisation_aware_training_simulates():
    """The deployed INT8 graph and the training-time simulation (train.qat) must round the
    same tensors the same way, or a --qat model is trained for a graph it never runs in.
    On the shipped (trained) model: an untrained one's tiny outputs make the last-ulp
    differences of near-tie roundings (torch multiplies by 1/scale, ONNX divides) count."""
    from tdpcr_edge.export.qat_ranges import qat_tensor_ranges
    from tdpcr_edge.train.qat import fake_quant_ranges

    ckpt = load_checkpoint()
    plain = export_onnx(ckpt.build(), tile=128)  # the shipped-model tests export this tile too
    calib, probe = tiles(2, size=128), tiles(1, size=128, seed=11)[0]
    simulated = fake_quantised(ckpt, calib[0])
    by_tensor = qat_tensor_ranges(plain, ckpt.build(), fake_quant_ranges(simulated))
    # PGF's spatial bias runs inside the fused operator's reference in training, unsimulated.
    unsimulated = [n.name for n in plain.graph.node if n.op_type == "Conv" and n.input[0] not in by_tensor]
    assert len(unsimulated) == len(ckpt.config.widths)
    q = Int8Quantizer(plain, [(t.optical, t.sar) for t in calib], ranges=by_tensor)
    try:
        p8 = q.quantize(exclude=unsimulated)
    finally:
        q.close()
    # The graph's own semantics: with its optimisations on, ONNX Runtime's CPU provider runs
    # INT8 convolutions through its integer kernels, which round differently per pixel
    # (about a third of the INT8 error itself here, with the same statistics).
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(p8.SerializeToString(), so, providers=["CPUExecutionProvider"])
    deployed = session.run(["reconstruction"], {"optical": probe.optical[None], "sar": probe.sar[None]})[0]
    o, s = torch.from_numpy(probe.optical[None]), torch.from_numpy(probe.sar[None])
    with torch.no_grad():
        sim = simulated(o, s)["reconstruction"].numpy()
        fp32 = ckpt.build()(o, s)["reconstruction"].numpy()
    rounding, simulated_rounding = float(np.abs(deployed - fp32).mean()), float(np.abs(sim - fp32).mean())
    assert rounding > 1e-4  # INT8 does round
    # The same error, in size and in place. Not bit for bit: a last-bit difference (torch
    # multiplies by 1/scale where ONNX divides; folded batch norm) decides a few near-ties
    # the other way, and each such step spreads through the layers after it. Rounding the
    # convolutions' outputs, or the residual add's cloudy image, changes the error by 30% or
    # more and lands nowhere near the simulation.
    assert abs(rounding / simulated_rounding - 1) < 0.05
    assert float(np.abs(deployed - sim).mean()) < 0.25 * rounding
