import json
from statistics import mean

import pytest

from tdpcr_edge.ablation import FUSIONS, pgf_ahead, run_ablation

pytestmark = pytest.mark.slow  # end to end: training, exporting, streaming or compiling


def test_pgf_ahead_needs_the_mean_and_most_seeds():
    assert pgf_ahead([0.4, 0.1, -0.2])
    assert not pgf_ahead([2.0, -0.1, -0.2])  # the mean alone is not enough
    assert not pgf_ahead([0.1, 0.1, -0.9])  # nor are most seeds alone
    assert not pgf_ahead([0.0])


def test_ablation_trains_every_seed_and_arm_scores_int8_and_resumes(tmp_path):
    small = dict(batch=2, patch=32, save_every=3, val_scenes=1, val_size=32)
    calls = []
    summary = run_ablation(
        tmp_path, steps=3, seeds=(0, 1), eval_scenes=2, eval_size=32, qat=True, on_step=lambda *a: calls.append(a), **small
    )
    assert len(calls) == 2 * 2 * 2 * 3  # seeds x arms x phases x steps
    for s in ("0", "1"):
        for f in FUSIONS:
            assert (tmp_path / f"seed-{s}" / f / "model.pt").is_file()
            row = summary["runs"][s][f]
            assert set(row["fp32"]) >= {"psnr", "thick_psnr", "miou"} and set(row["int8_simulated"]) >= {"psnr", "thick_psnr", "miou"}
            # INT8 is simulated with the run's ranges: it differs from FP32.
            assert row["int8_simulated"]["psnr"] != row["fp32"]["psnr"]
    for kind in ("fp32", "int8_simulated"):
        for f in FUSIONS:
            assert summary["mean"][kind][f]["miou"] == pytest.approx(mean(summary["runs"][s][f][kind]["miou"] for s in ("0", "1")))
        d = summary["pgf_minus_concat"][kind]["thick_psnr"]
        assert d == pytest.approx(
            [summary["runs"][s]["pgf"][kind]["thick_psnr"] - summary["runs"][s]["concat"][kind]["thick_psnr"] for s in ("0", "1")]
        )
        assert summary["pgf_ahead"][kind]["thick_psnr"] == pgf_ahead(d)
    md = (tmp_path / "ablation.md").read_text()
    assert "INT8 inference (simulated" in md and md.count("| mean |") == 4
    assert json.loads((tmp_path / "ablation.json").read_text())["seeds"] == [0, 1]

    # Finished runs are scored again, not retrained.
    calls.clear()
    again = run_ablation(
        tmp_path, steps=3, seeds=(0, 1), eval_scenes=2, eval_size=32, qat=True, on_step=lambda *a: calls.append(a), **small
    )
    assert calls == [] and again["runs"] == summary["runs"]
