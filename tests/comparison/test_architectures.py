"""Each architecture at its small size, end to end as a user runs it: trained 3 steps on a
LuojiaSET-OSFCR fixture laid out as published, exported at fp32, fp16 and int8 (each gated by
its drift against its own torch FP32), benched with TDP-CR in one report, and the paper's
comparison run in miniature."""

import json

import pytest

from tdpcr_edge.contract import read_manifest
from tdpcr_edge.errors import ConfigError
from tdpcr_edge.model.registry import names, outputs_of
from tdpcr_edge.train import TrainOptions, train
from tests.data import fixtures
from tests.helpers import run_main

ARCHS = names()


@pytest.fixture(scope="module")
def luojia(tmp_path_factory):
    root = tmp_path_factory.mktemp("luojia") / "LuojiaSET-OSFCR"
    fixtures.luojia_published(root, size=32, per_folder=7)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory, luojia):
    """Every architecture, small, 3 steps per phase on the fixture's train split."""
    out = {}
    for arch in ARCHS:
        run = tmp_path_factory.mktemp("train") / arch
        metrics = train(
            TrainOptions(
                out=run,
                arch=arch,
                config="small",
                data=f"luojia:{luojia}",
                steps=3,
                batch=2,
                patch=32,
                save_every=3,
                val_scenes=1,
                val_size=32,
                device="cpu",
            )
        )
        out[arch] = (run / "model.pt", metrics)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_trains_on_luojia_as_published(trained, arch):
    path, metrics = trained[arch]
    assert path.is_file() and metrics["config"]["arch"] == arch and metrics["config"]["num_classes"] == 7
    phases = sorted(metrics["phases"])
    assert phases == (["1", "2"] if "segmentation" in outputs_of(metrics["config"]) else ["1"])
    assert all(p["val"]["model"]["psnr"] > 0 for p in metrics["phases"].values())


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_exports_at_every_precision_gated(trained, luojia, tmp_path, arch, capsys, monkeypatch):
    from tdpcr_edge.export import ExportOptions, run_export

    data = f"luojia:{luojia}"  # 7 classes: calibrated and gated on the data it was trained on
    for precision in ("fp32", "fp16", "int8"):
        art = tmp_path / precision
        run_export(
            ExportOptions(
                out=art, precision=precision, checkpoint=trained[arch][0], tile=32, eval_data=data, eval_tiles=2, calib=data, calib_tiles=2
            )
        )
        m = read_manifest(art)
        assert m["model"]["arch"] == arch and [o["name"] for o in m["outputs"]] == list(outputs_of(m["model"]))
        assert m["drift"]["within_budget"] is True, (arch, precision, m["drift"])
    # compare and verify read the artifacts as they are: no mIoU where the model has no segmentation
    segments = "segmentation" in outputs_of(m["model"])
    for args in (["compare", tmp_path / "fp32", tmp_path / "int8", "--data", data, "--tiles", "2"], ["verify", tmp_path / "int8"]):
        code, out, err = run_main(args, capsys, monkeypatch)
        assert code == 0, err
        assert ("n/a (no segmentation)" in out) != segments, out


def test_plugin_export_is_refused_for_a_model_without_pgf(trained, tmp_path):
    from tdpcr_edge.export import ExportOptions, run_export

    with pytest.raises(ConfigError, match="--plugin needs a PGF model; this checkpoint is dsen2cr"):
        run_export(ExportOptions(out=tmp_path / "a", checkpoint=trained["dsen2cr"][0], tile=32, plugin=True, eval_tiles=2))


def test_one_bench_report_across_models(trained, luojia, tmp_path):
    from tdpcr_edge.backends.factory import from_report
    from tdpcr_edge.bench.options import BenchOptions
    from tdpcr_edge.bench.run import run_bench
    from tdpcr_edge.report.bench_report import markdown, write_report

    ckpts = tuple(trained[a][0] for a in ("tdpcr", "dsen2cr", "uncrtaints"))
    opts = BenchOptions(
        report=tmp_path,
        checkpoints=ckpts,
        backends="ort",
        precisions="fp32",
        data=f"luojia:{luojia}",
        tiles=2,
        tile=32,
        iterations=2,
        rounds=1,
        eval_tiles=2,
        calib=f"luojia:{luojia}",
        calib_tiles=2,
    )
    report = run_bench(opts)
    labels = [m["label"] for m in report["models"]]
    assert labels == ["tdpcr-tiny", "dsen2cr-small", "uncrtaints-small"]
    rows = {r["model"]: r for r in report["rows"] if r["backend"] == "ort"}
    assert set(rows) == set(labels) and rows["dsen2cr-small"]["miou"] is None and rows["tdpcr-tiny"]["miou"] is not None
    assert rows["dsen2cr-small"]["params_m"] == pytest.approx(0.082093) and rows["dsen2cr-small"]["arch"] == "dsen2cr"
    # each row judged against its own model's FP32: an ort fp32 row drifts by nothing
    assert all(abs(r["psnr_delta"]) < 1e-3 for r in rows.values())
    md = markdown(report)
    assert "| arch | params M | GMACs |" in md and md.count("Fastest within the drift budget") == 3
    paths = write_report(report, tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
    with pytest.raises(ConfigError, match="compares 3 models"):
        from_report(paths[0])


def test_the_comparison_in_miniature(tmp_path):
    from tdpcr_edge.comparison import ComparisonOptions, run_comparison

    opts = ComparisonOptions(
        out=tmp_path,
        archs=("tdpcr-concat", "uncrtaints"),
        steps=2,
        batch=2,
        patch=32,
        eval_scenes=2,
        eval_size=32,
        tile=32,
        bench_tiles=1,
        iterations=2,
        rounds=1,
        precisions="fp32",
        backends="ort",
    )
    summary = run_comparison(opts)
    rows = {r["arch"]: r for r in summary["rows"]}
    assert rows["uncrtaints"]["miou"] is None and rows["tdpcr-concat"]["miou"] is not None
    assert rows["uncrtaints"]["full_params_m"] == pytest.approx(0.520218) and rows["uncrtaints"]["latency"]["fp32"]["ms"] > 0
    md = (tmp_path / "comparison.md").read_text()
    assert "| uncrtaints | 0.020 |" in md and json.loads((tmp_path / "comparison.json").read_text())["rows"][0]["arch"] == "tdpcr-concat"
