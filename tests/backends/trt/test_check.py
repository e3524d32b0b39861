"""`tdpcr-edge check`: can a target's TensorRT take a graph? Every artifact kind export writes
passes where it should; graphs TensorRT cannot take are refused with one line per problem
naming the node; export and build-engine run the check first."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tdpcr_edge.backends.targets import list_profiles, load_profile
from tdpcr_edge.backends.trt.check import check_artifact, check_graph, parser_table
from tdpcr_edge.errors import ConfigError
from tdpcr_edge.export.pipeline import ExportOptions, run_export
from tests.helpers import run_main

TILE = 64
TRT_PROFILES = list_profiles("tensorrt")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, random_checkpoint):
    """The artifact kinds: what `make demo` writes (fp32, fp16, bf16, and INT8 with the CPU
    placement, for x86-cpu), INT8 placed for TensorRT, and FP32 and FP16 plugin graphs."""
    root = tmp_path_factory.mktemp("check")
    common = dict(checkpoint=random_checkpoint, tile=TILE, eval_tiles=1, calib_tiles=2, allow_drift=True)
    kinds = {
        "fp32": dict(precision="fp32"),
        "fp16": dict(precision="fp16"),
        "bf16": dict(precision="bf16", backend="openvino"),
        "int8-cpu": dict(precision="int8", int8_placement="cpu"),
        "int8-trt": dict(precision="int8", int8_placement="tensorrt"),
        "fp32-plugin": dict(precision="fp32", plugin=True),
        "fp16-plugin": dict(precision="fp16", plugin=True),
    }
    out = {}
    for name, kw in kinds.items():
        if name == "bf16":
            from tdpcr_edge.probe import cpu_isa

            if not cpu_isa().native_bf16:
                continue
        run_export(ExportOptions(out=root / name, **common, **kw))
        out[name] = root / name
    return out


def test_the_parser_table_is_the_carried_release():
    t = parser_table()
    assert t["release"] == "10.1" and (t["opset_min"], t["opset_max"]) == (9, 20)
    assert "Conv" in t["supported"] and "QLinearConv" in t["unsupported"]["ops"]


@pytest.mark.parametrize("profile", TRT_PROFILES)
def test_tensorrt_artifacts_pass_every_tensorrt_profile(artifacts, profile):
    for name in ("fp32", "fp16", "int8-trt", "fp32-plugin", "fp16-plugin"):
        problems, release = check_artifact(artifacts[name], profile)
        assert problems == [] and release == "10.1", (name, [p.line() for p in problems])


@pytest.mark.parametrize("profile", TRT_PROFILES)
def test_cpu_placed_int8_is_refused_by_tensorrt_profiles(artifacts, profile):
    problems, _ = check_artifact(artifacts["int8-cpu"], profile)
    assert problems and all("UINT8 quantisation" in p.message for p in problems)
    assert {p.op for p in problems} <= {"QuantizeLinear", "DequantizeLinear"}


def test_cpu_profile_takes_every_graph_but_plugin_ones(artifacts):
    for name, path in artifacts.items():
        problems, release = check_artifact(path, "x86-cpu")
        assert release is None
        assert bool(problems) == name.endswith("plugin"), (name, [p.line() for p in problems])


def _tiny_graph(nodes, inits, inputs=("x",), shape=("N", 4, "H", "W")):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, onnx.TensorProto.FLOAT, list(shape)) for i in inputs],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_an_op_the_parser_lacks_is_named(tmp_path):
    model = _tiny_graph(
        [helper.make_node("Relu", ["x"], ["r"], name="relu0"), helper.make_node("Unique", ["r"], ["y"], name="unique_node")], []
    )
    problems = check_graph(model, load_profile("jetson-orin-nano-jp6"))
    assert [p.line() for p in problems] == ["unique_node (Unique): the TensorRT ONNX parser (10.1 table) does not support Unique"]
    onnx.save(model, str(tmp_path / "m.onnx"))


def test_a_nonzero_zero_point_is_named():
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(3, np.int8), "z")
    model = _tiny_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q_in"),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq_in"),
        ],
        [scale, zero],
    )
    lines = [p.line() for p in check_graph(model, load_profile("jetson-thor-jp7"))]
    assert lines == [
        "q_in (QuantizeLinear): zero point 3 is not 0; TensorRT quantises symmetrically (zero point 0)",
        "dq_in (DequantizeLinear): zero point 3 is not 0; TensorRT quantises symmetrically (zero point 0)",
    ]


def test_mixed_float_types_resize_modes_and_fixed_shapes_are_named():
    half = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float16), "h")
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")
    nodes = [
        helper.make_node("Add", ["x", "h"], ["a"], name="add_mixed"),
        helper.make_node("Resize", ["a", "", "sc"], ["y"], name="resize_cubic", mode="cubic"),
    ]
    problems = check_graph(_tiny_graph(nodes, [half, scales], shape=(4, 4, 128, 128)), load_profile("jetson-orin-nano-jp6"))
    lines = [p.line() for p in problems]
    assert "add_mixed (Add): mixes FP16 and FP32 inputs; a strongly typed network needs a Cast between them" in lines
    assert any(ln.startswith("resize_cubic (Resize): mode='cubic'") for ln in lines)
    assert any(ln.startswith("x (input): fixed batch 4 exceeds") for ln in lines)
    assert any(ln.startswith("x (input): fixed size 128x128 is not jetson-orin-nano-jp6's tile 256") for ln in lines)


def test_cli_check_is_one_line_per_problem_and_exits_2(artifacts, tmp_path, capsys, monkeypatch):
    code, out, _ = run_main(["check", artifacts["fp16-plugin"], "--target", "jetson-agx-orin-jp7"], capsys, monkeypatch)
    assert code == 0 and "can take this graph" in out and "10.1 table" in out
    code, _, err = run_main(["check", artifacts["int8-cpu"], "--target", "jetson-agx-orin-jp7"], capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and lines and all(ln.startswith("error: ") and "UINT8 quantisation" in ln for ln in lines)
    code, _, err = run_main(["check", tmp_path, "--target", "jetson-agx-orin-jp7"], capsys, monkeypatch)
    assert code == 2 and "no model.onnx" in err


def test_export_and_build_engine_run_the_check_first(tmp_path, random_checkpoint, artifacts, monkeypatch):
    from tdpcr_edge.backends.trt import check as trt_check
    from tdpcr_edge.backends.trt import engine as engine_mod

    # A TensorRT target refuses to write what its TensorRT cannot take (here: a parser that
    # does not know Conv), naming the node, and writes nothing.
    table = dict(parser_table())
    table["supported"] = {k: v for k, v in table["supported"].items() if k != "Conv"}
    monkeypatch.setattr(trt_check, "parser_table", lambda: table)
    with pytest.raises(ConfigError, match=r"jetson-orin-nano-jp6's TensorRT cannot take this graph: .*\(Conv\): the TensorRT ONNX parser"):
        run_export(
            ExportOptions(
                out=tmp_path / "art", precision="fp16", checkpoint=random_checkpoint, tile=TILE, eval_tiles=1, target="jetson-orin-nano-jp6"
            )
        )
    assert not (tmp_path / "art").exists()
    with pytest.raises(ConfigError, match=r"cannot take this graph: .*\(Conv\)"):
        engine_mod.plan_trtexec(artifacts["fp16"], tmp_path / "eng", target="jetson-orin-nano-jp6")


def test_fp16_plugin_nodes_take_fp16(artifacts):
    """An FP16 --plugin export feeds TDP_PGF in FP16 (the kernel's half path) when that meets
    the drift budget, and records the drift it measured for that choice."""
    import json

    from tdpcr_edge.backends.tdp_pgf_op import _fp16_nodes

    proto = onnx.load(str(artifacts["fp16-plugin"] / "model.onnx"))
    nodes = [n.name for n in proto.graph.node if n.op_type == "TDP_PGF"]
    assert nodes and _fp16_nodes(proto) == set(nodes)
    plugin = json.loads((artifacts["fp16-plugin"] / "manifest.json").read_text())["plugin"]
    assert plugin["precision"] == "fp16" and {"psnr_delta", "miou_delta"} <= set(plugin["fp16_drift"])
    assert json.loads((artifacts["fp32-plugin"] / "manifest.json").read_text())["plugin"]["precision"] == "fp32"


def test_plugin_nodes_must_be_among_the_librarys_creators(artifacts):
    proto = onnx.load(str(artifacts["fp32-plugin"] / "model.onnx"))
    profile = load_profile("jetson-agx-orin-jp6")
    assert check_graph(proto, profile, creators={("TDP_PGF", "1")}) == []
    problems = check_graph(proto, profile, creators={("TDP_PGF", "2")})
    assert problems and all(p.op == "TDP_PGF" and "not among the plugin library's creators (TDP_PGF v2)" in p.message for p in problems)
