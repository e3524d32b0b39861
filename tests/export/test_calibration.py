"""INT8 calibration in bounded memory: tiles made one at a time and calibrated group by group,
with the ranges merged across groups."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tdpcr_edge.export.quantizer as quantizer_module
from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.export.calibration import CalibrationTiles, calibration_group
from tdpcr_edge.export.heldout import CALIB_SEED, calibration_tiles, tiles_digest, tiles_from
from tdpcr_edge.export.onnx_graph import export_onnx
from tdpcr_edge.export.quantizer import Int8Quantizer
from tdpcr_edge.train.checkpoint import load_checkpoint


@pytest.mark.parametrize("tiles, group, expected", [(32, 1, 1), (32, 4, 4), (30, 4, 3), (7, 4, 1), (1, 4, 1), (3, 8, 3)])
def test_calibration_group_divides_the_tiles(tiles, group, expected):
    assert calibration_group(tiles, group) == expected


def test_lazy_tiles_follow_the_calibrators_ranges_and_keep_the_digest():
    norm = Normalization()
    listed = tiles_from("synthetic", 6, 32, norm, 6, CALIB_SEED, split="val")
    lazy = calibration_tiles("synthetic", 6, 32, norm, 6, CALIB_SEED)
    made = []
    original = lazy.make
    lazy.make = lambda: (made.append(1) or t for t in original())  # counts tiles made
    lazy.rewind()
    for i in (0, 1, 2, 3, 4, 5):  # what ONNX Runtime's strided collection asks, in groups of one
        lazy.set_range(i, i + 1)
        item = lazy.get_next()
        np.testing.assert_array_equal(item["optical"][0], listed[i].optical)
        assert lazy.get_next() is None  # the group ends with its range
    assert len(made) == 6  # each tile made once
    assert lazy.digest() == tiles_digest(listed)
    lazy.set_range(2, 3)  # going back starts the tiles over
    np.testing.assert_array_equal(lazy.get_next()["sar"][0], listed[2].sar)


@pytest.fixture(scope="module")
def proto(random_checkpoint):
    return export_onnx(load_checkpoint(random_checkpoint).build(), tile=32)


def _ranges(proto, method, group, monkeypatch):
    monkeypatch.setattr(quantizer_module, "calibration_group", lambda n: n if group is None else group)
    from tdpcr_edge.export.calibration import TileReader

    groups = []
    original = TileReader.set_range
    monkeypatch.setattr(
        TileReader,
        "set_range",
        lambda self, start_index, end_index: groups.append((start_index, end_index)) or original(self, start_index, end_index),
    )
    tiles = [(t.optical, t.sar) for t in tiles_from("synthetic", 6, 32, Normalization(), 6, CALIB_SEED, split="val")]
    q = Int8Quantizer(proto, tiles, method)
    try:
        data = json.loads(q.cache.read_text())["data"]
    finally:
        q.close()

    def val(v):
        return float(np.max(np.abs(np.asarray(v["data"] if isinstance(v, dict) else v, float))))

    assert groups == ([(0, 6)] if group is None else [(i, i + 1) for i in range(6)])  # what ONNX Runtime collected at a time
    return {k: (val(v["lowest"]), val(v["highest"])) for k, v in data.items()}


@pytest.mark.parametrize("method, tolerance", [("minmax", 0.0), ("percentile", 1e-2)])
def test_grouped_calibration_merges_to_the_one_pass_ranges(proto, monkeypatch, method, tolerance):
    """Min/max merge exactly; percentile histograms merge with the first group's bin width,
    which moves a range by far less than one INT8 step (1/127 of it)."""
    whole, grouped = _ranges(proto, method, None, monkeypatch), _ranges(proto, method, 1, monkeypatch)
    assert whole.keys() == grouped.keys() and len(whole) > 10
    for name, (lo, hi) in whole.items():
        span = max(lo, hi, 1e-12)
        assert abs(grouped[name][0] - lo) <= tolerance * span and abs(grouped[name][1] - hi) <= tolerance * span, name


def test_quantizer_takes_lazy_tiles(proto):
    lazy = calibration_tiles("synthetic", 3, 32, Normalization(), 6, CALIB_SEED)
    q = Int8Quantizer(proto, lazy, "percentile")
    try:
        assert any(n.op_type == "QuantizeLinear" for n in q.quantize().graph.node)
    finally:
        q.close()
    assert lazy.digest() == tiles_digest(tiles_from("synthetic", 3, 32, Normalization(), 6, CALIB_SEED, split="val"))
    assert isinstance(lazy, CalibrationTiles)
