"""The cpu-no-vnni INT8 placement: on an x86 CPU without VNNI, oneDNN multiplies u8 x s8 byte
pairs with vpmaddubsw into saturating signed 16-bit sums (a signed activation shifted by +128
into u8). Every pair must stay <= 32767: read off the exported graph's quantisation parameters,
and off the quantised values of real tiles, calibration's own and tiles past its range. The
convolutions whose input can be negative stay in float."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tdpcr_edge.export.heldout import CALIB_SEED, tiles_from
from tdpcr_edge.export.onnx_graph import export_onnx
from tdpcr_edge.export.qat_ranges import qat_tensor_ranges
from tdpcr_edge.export.quantizer import PAIR_SUM_LIMIT, Int8Quantizer, pair_bounds
from tdpcr_edge.export.signs import non_negative_tensors
from tdpcr_edge.train.checkpoint import load_checkpoint

TILE = 32


def _quantized(ckpt_path, placements):
    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.build()
    proto = export_onnx(model, tile=TILE)
    ranges = qat_tensor_ranges(proto, model, ckpt.qat_ranges) if ckpt.qat else {}
    tiles = tiles_from("synthetic", 4, TILE, ckpt.normalization, ckpt.config.num_classes, CALIB_SEED, split="val")
    graphs, floats = {}, {}
    for placement in placements:
        q = Int8Quantizer(proto, [(t.optical, t.sar) for t in tiles], "percentile", ranges=ranges, placement=placement)
        try:
            graphs[placement], floats[placement] = q.quantize(), q.float_convs
        finally:
            q.close()
    return proto, tiles, graphs, floats


@pytest.fixture(scope="module")
def untrained(random_checkpoint):
    """No quantisation-aware ranges: percentile calibration, ReLU outputs unbounded above."""
    return _quantized(random_checkpoint, ("cpu", "cpu-no-vnni"))


@pytest.fixture(scope="module")
def shipped():
    """The shipped checkpoint, trained with quantisation: its trained ranges are Clips."""
    return _quantized(None, ("cpu-no-vnni",))


def _conv_qdq(proto):
    """Per INT8 convolution: (its input's QuantizeLinear, its int8 weights)."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        w = producers.get(n.input[1]) if n.op_type == "Conv" else None
        if w is not None and w.op_type == "DequantizeLinear":
            q = producers[producers[n.input[0]].input[0]]
            assert q.op_type == "QuantizeLinear"
            out[n.name] = (q, inits[w.input[0]])
    return out, inits, producers


def _largest_u8_step(q, inits, producers):
    """The largest step a UINT8 QuantizeLinear can give: 255, or less where its input is
    bounded by a Clip with a constant maximum, or a softmax's 1."""
    src = producers.get(q.input[0])
    scale = float(inits[q.input[1]])
    if src is not None and src.op_type == "Softmax":
        return min(255, int(np.round(1.0 / scale)))
    if src is not None and src.op_type == "Clip" and len(src.input) > 2 and src.input[2] in inits:
        return min(255, int(np.round(float(inits[src.input[2]]) / scale)))
    return 255


@pytest.mark.parametrize("which", ["untrained", "shipped"])
def test_no_vnni_placement_bounds_every_pair_by_its_quantisation_parameters(request, which):
    proto32, _, graphs, floats = request.getfixturevalue(which)
    graph = graphs["cpu-no-vnni"]
    convs, inits, producers = _conv_qdq(graph)
    unsigned = non_negative_tensors(proto32)
    signed = sorted(n.name for n in proto32.graph.node if n.op_type == "Conv" and n.input[0] not in unsigned)
    # Every convolution with an input that cannot be negative in INT8; the others in float.
    assert (
        sorted(floats["cpu-no-vnni"]) == signed
        and signed
        and len(convs) == sum(n.op_type == "Conv" for n in proto32.graph.node) - len(signed)
    )
    assert not set(signed) & set(convs)
    bounds = pair_bounds(graph)
    for name, (q, w) in convs.items():
        zero = inits[q.input[2]]
        weight = int(np.abs(w.astype(np.int32)).max())
        assert zero.dtype == np.uint8 and int(zero) == 0, name  # unsigned, zero point 0: no +128 shift
        activation = _largest_u8_step(q, inits, producers)
        assert activation <= 127 and weight <= 127, (name, activation, weight)
        assert 2 * activation * weight <= PAIR_SUM_LIMIT, name
        assert bounds[name]["pair"] == 2 * activation * weight
    if which == "shipped":  # the trained ranges' Clips bound every unsigned input already
        assert not any(n.name.endswith("_clip7") for n in graph.graph.node)


def test_cpu_placement_is_the_one_that_saturates(untrained):
    """The check above would catch it: the cpu placement's pairs reach 2 x 255 x 127."""
    _, _, graphs, _ = untrained
    bounds = pair_bounds(graphs["cpu"])
    assert max(b["pair"] for b in bounds.values()) == 2 * 255 * 127 > PAIR_SUM_LIMIT
    assert {b["input"] for b in bounds.values()} == {"uint8", "int8"}


def test_no_vnni_unsigned_scale_spans_the_range_in_127_steps(untrained):
    """Same calibration, same UINT8 inputs with zero point 0: the no-VNNI scale is the cpu
    placement's x 255/127; every unsigned input that nothing bounds gets a Clip at 127 steps."""
    _, _, graphs, _ = untrained
    cpu, _, _ = _conv_qdq(graphs["cpu"])
    nv, inits, producers = _conv_qdq(graphs["cpu-no-vnni"])
    cpu_inits = {i.name: numpy_helper.to_array(i) for i in graphs["cpu"].graph.initializer}
    clips = 0
    for name, (q, _) in nv.items():
        s_nv, s_cpu = float(inits[q.input[1]]), float(cpu_inits[cpu[name][0].input[1]])
        np.testing.assert_allclose(s_nv, s_cpu * 255 / 127, rtol=1e-6, err_msg=name)
        clips += producers[q.input[0]].name.endswith("_clip7")
    assert clips > 0


def _quantised_values(graph, tiles):
    """Every INT8 convolution's quantised input on ``tiles``, as ONNX Runtime computes it."""
    import onnxruntime as ort

    convs, _, _ = _conv_qdq(graph)
    g = onnx.ModelProto()
    g.CopyFrom(graph)
    zero_types = {i.name: i.data_type for i in g.graph.initializer}
    names = sorted({q.output[0]: zero_types[q.input[2]] for q, _ in convs.values()}.items())
    g.graph.output.extend(helper.make_tensor_value_info(n, t, None) for n, t in names)
    session = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [
        dict(zip([n for n, _ in names], session.run([n for n, _ in names], {"optical": t.optical[None], "sar": t.sar[None]})))
        for t in tiles
    ]
    return {name: [r[q.output[0]] for r in runs] for name, (q, _) in convs.items()}, convs


@pytest.mark.parametrize("which", ["untrained", "shipped"])
def test_no_vnni_quantised_tiles_stay_within_16_bits(request, which):
    """The quantised inputs of calibration's tiles, and of the same tiles at four times
    their brightness (past every calibrated range), against the weights. However a kernel
    pairs the products of one output's dot product, no pair exceeds the sum of the two
    largest |a| x |w| (each input channel's largest quantised value): <= 32767."""
    _, tiles, graphs, _ = request.getfixturevalue(which)
    bright = [replace(t, optical=t.optical * 4, sar=t.sar * 4) for t in tiles]
    values, convs = _quantised_values(graphs["cpu-no-vnni"], tiles + bright)
    top, saturated = 0, False
    for name, batches in values.items():
        assert batches[0].dtype == np.uint8, name
        a = np.concatenate([v[0].reshape(v.shape[1], -1) for v in batches], axis=1).astype(np.int32)
        assert a.max() <= 127, name
        saturated |= a.max() == 127
        w = np.abs(convs[name][1].astype(np.int64))  # (out, in / groups, kh, kw)
        groups = a.shape[0] // w.shape[1]
        largest = a.max(axis=1).reshape(groups, w.shape[1])  # per input channel, by group
        group_of_out = np.arange(w.shape[0]) // (w.shape[0] // groups)
        products = (w * largest[group_of_out][:, :, None, None]).reshape(w.shape[0], -1)
        two = np.sort(products, axis=1)[:, -2:].sum(axis=1) if products.shape[1] > 1 else products[:, 0]
        top = max(top, int(two.max()))
        assert two.max() <= PAIR_SUM_LIMIT, (name, int(two.max()))
    assert top > PAIR_SUM_LIMIT // 4  # the check sees real magnitudes, not zeros
    assert saturated  # the bright tiles reach the top step: the bound, not the data, holds them


@pytest.mark.slow
def test_capped_export_stays_within_budget(tmp_path):
    """An export for a CPU without VNNI (OpenVINO's oneDNN capped to AVX2, in its own
    process: oneDNN reads the cap once) with the shipped model: cpu-no-vnni stays within the
    drift budget where the cpu placement leaves it. The gate's 16 tiles of 256 x 256 take
    minutes; 4 tiles of 64 x 64 show the same split."""
    import json
    import os

    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    drift = {}
    for placement in ("cpu-no-vnni", "cpu"):
        out = tmp_path / placement
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tdpcr_edge.cli",
                "export",
                "--precision",
                "int8",
                "--int8-placement",
                placement,
                "--backend",
                "openvino",
                "--tile",
                "64",
                "--eval-tiles",
                "4",
                "--calib-tiles",
                "8",
                "--allow-drift",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        drift[placement] = json.loads((out / "manifest.json").read_text())["drift"]
    assert drift["cpu-no-vnni"]["within_budget"], drift["cpu-no-vnni"]
    assert not drift["cpu"]["within_budget"], drift["cpu"]
