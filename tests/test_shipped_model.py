"""The trained tiny checkpoint shipped in the package: it must visibly work, and its
exports must stay faithful. These are the foundation and export issues' acceptance bars,
checked on held-out synthetic data (a seed never used in training)."""

import pytest

from tdpcr_edge.contract import default_checkpoint_path
from tdpcr_edge.data.sources import SyntheticSource
from tdpcr_edge.export import ExportOptions, run_export
from tdpcr_edge.scoring import evaluate_scenes
from tdpcr_edge.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end to end: training, exporting, streaming or compiling

HELD_OUT_SEED = 7  # training used seed 0


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(default_checkpoint_path())


def test_beats_the_cloudy_input_and_segments(shipped):
    scenes = SyntheticSource(HELD_OUT_SEED).scenes(12, 128)
    result, _ = evaluate_scenes(shipped.build(), scenes)
    thick = result["bins"]["thick"]
    assert thick["model"]["psnr"] - thick["input"]["psnr"] >= 10.0
    assert result["model"]["psnr"] > result["input"]["psnr"] + 5
    assert result["model"]["miou"] >= 60.0
    assert sum(iou is not None for iou in result["per_class_iou"]) >= 5


@pytest.mark.parametrize("precision", ["fp32", "fp16", "mixed", "int8"])
def test_exports_stay_within_budget(tmp_path, precision):
    m = run_export(
        ExportOptions(out=tmp_path / precision, precision=precision, tile=128, eval_tiles=8, calib_tiles=16, sensitivity_tiles=2)
    )
    d = m["drift"]
    assert d["within_budget"]
    assert abs(d["psnr_delta"]) <= 0.3 and abs(d["miou_delta"]) <= 1.0
    if precision == "fp32":
        assert d["max_abs_error"] < 1e-4
