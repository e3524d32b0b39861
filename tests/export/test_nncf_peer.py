"""The bench peer row `openvino int8 nncf`: NNCF's post-training INT8 of our FP32 graph at its
defaults, saved as an OpenVINO IR beside the artifacts (tdpcr_edge/export/nncf_peer.py), run
by the OpenVINO runner and measured by bench like every row."""

import json

import numpy as np
import pytest

from tdpcr_edge.backends import load_runner
from tdpcr_edge.backends import registry as backends
from tdpcr_edge.bench.artifacts import artifact_key, artifact_keys
from tdpcr_edge.bench.matrix import Combo, select, unavailable
from tdpcr_edge.bench.options import BenchOptions
from tdpcr_edge.bench.run import run_bench
from tdpcr_edge.data.sources import SyntheticSource
from tdpcr_edge.errors import ConfigError, IntegrityError
from tdpcr_edge.export import ExportOptions, nncf_peer, run_export

TILE = 64
ROW = Combo("openvino", "int8", "nncf", "cpu")
needs_openvino = pytest.mark.skipif(backends.get("openvino").missing() is not None, reason="openvino is not installed")
needs_nncf = pytest.mark.skipif(
    not backends.has_module("nncf") or backends.get("openvino").missing() is not None,
    reason="nncf (pip install 'tdpcr-edge[nncf]') or openvino is not installed",
)


def without_nncf(monkeypatch):
    real = backends.has_module
    monkeypatch.setattr(backends, "has_module", lambda mod: mod != "nncf" and real(mod))


def test_the_row_is_listed_beside_our_int8():
    assert [c.name for c in select("openvino", "int8")] == ["openvino-int8-nncf", "openvino-int8"]
    assert ROW in select(None, None)
    assert nncf_peer.is_row(ROW) and not nncf_peer.is_row(Combo("openvino", "int8"))
    # Its artifact is NNCF's IR, made from the fp32 artifact; our rows keep their precision's.
    rows = select("ort,openvino", "fp32,int8")
    assert artifact_key(ROW) == "int8-nncf" and artifact_keys(rows) == ["fp32", "int8", "int8-nncf"]
    assert artifact_keys([ROW]) == ["int8-nncf"]


@needs_openvino
def test_without_nncf_the_row_is_skipped_with_the_reason(monkeypatch):
    without_nncf(monkeypatch)
    assert unavailable(ROW) == "nncf is not installed (pip install 'tdpcr-edge[nncf]')"
    assert unavailable(Combo("openvino", "int8")) is None


@pytest.fixture(scope="module")
def fp32_artifact(tmp_path_factory, random_checkpoint):
    out = tmp_path_factory.mktemp("nncf") / "fp32"
    run_export(ExportOptions(out=out, precision="fp32", checkpoint=random_checkpoint, tile=TILE, eval_tiles=1))
    return out


@pytest.fixture(scope="module")
def nncf_ir(fp32_artifact):
    if not backends.has_module("nncf"):
        pytest.skip("nncf is not installed (pip install 'tdpcr-edge[nncf]')")
    out = fp32_artifact.parent / "int8-nncf"
    assert nncf_peer.ensure(fp32_artifact, out, calib_tiles=2)
    return out


@needs_nncf
def test_the_ir_runs_close_to_fp32(nncf_ir, fp32_artifact):
    assert sorted(p.name for p in nncf_ir.iterdir()) == ["manifest.json", "model.bin", "model.xml", "nncf.json"]
    record = json.loads((nncf_ir / "nncf.json").read_text())
    assert record["nncf"] and record["openvino"] and record["parameters"]["overflow_fix"] == "default"
    assert record["source_onnx_sha256"] == json.loads((fp32_artifact / "manifest.json").read_text())["onnx_sha256"]
    assert (
        record["calibration"]["tiles"] == 2 and record["calibration"]["tile"] == TILE and len(record["calibration"]["tiles_sha256"]) == 64
    )
    manifest = json.loads((nncf_ir / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["format"] == "openvino-ir" and manifest["onnx_sha256"] is None
    assert manifest["model_bytes"] == sum(f.stat().st_size for f in nncf_peer.model_files(nncf_ir))
    assert [f.name for f in nncf_peer.model_files(nncf_ir)] == ["model.xml", "model.bin"]
    assert [f.name for f in nncf_peer.model_files(fp32_artifact)] == ["model.onnx"]

    tiles = SyntheticSource(5).scenes(2, TILE)
    optical, sar = np.stack([t.optical for t in tiles]), np.stack([t.sar for t in tiles])
    runner = load_runner(nncf_ir, backend="openvino", variant="nncf", precision="int8")
    assert runner.model.name == "model.xml" and runner.inference_precision == "f32"
    got = runner(optical, sar)
    ref = load_runner(fp32_artifact, backend="openvino")(optical, sar)
    for k in ("reconstruction", "segmentation", "reliance"):
        assert got[k].shape == ref[k].shape and got[k].dtype == np.float32
        err = np.abs(got[k] - ref[k])
        assert err.mean() < 0.05 * np.ptp(ref[k]) and np.corrcoef(got[k].ravel(), ref[k].ravel())[0, 1] > 0.97, k
    assert not np.array_equal(got["reconstruction"], ref["reconstruction"])  # it is quantised
    # The folder says what it holds: `--backend auto` runs it on OpenVINO.
    assert load_runner(nncf_ir, backend="auto").model.name == "model.xml"


@needs_nncf
def test_a_stale_folder_is_remade_and_a_foreign_one_refused(nncf_ir, fp32_artifact, tmp_path):
    assert not nncf_peer.ensure(fp32_artifact, nncf_ir, calib_tiles=2)  # matching: reused
    record = json.loads((nncf_ir / "nncf.json").read_text())
    (nncf_ir / "nncf.json").write_text(json.dumps({**record, "nncf": "2.0.0"}))  # made by another NNCF
    stages = []
    assert nncf_peer.ensure(fp32_artifact, nncf_ir, calib_tiles=2, on_stage=stages.append)
    assert stages == ["quantise fp32 with NNCF"] and json.loads((nncf_ir / "nncf.json").read_text())["nncf"] == record["nncf"]
    # Other calibration tiles, another FP32 graph: stale too.
    assert not nncf_peer.matches(nncf_ir, nncf_peer.wanted(fp32_artifact, calib_tiles=3))
    assert not nncf_peer.matches(nncf_ir, {**nncf_peer.wanted(fp32_artifact, calib_tiles=2), "source_onnx_sha256": "0" * 64})
    assert not list(nncf_ir.parent.glob(".int8-nncf.tmp-*"))

    foreign = tmp_path / "int8-nncf"
    foreign.mkdir()
    (foreign / "model.xml").write_text("<net/>")
    with pytest.raises(ConfigError, match="no nncf.json"):
        nncf_peer.ensure(fp32_artifact, foreign, calib_tiles=2)
    with pytest.raises(ConfigError, match="plain FP32 artifact"):
        nncf_peer.ensure(nncf_ir, tmp_path / "x", calib_tiles=2)
    # The row runs NNCF's IR only, and an IR with its weights gone is one line.
    with pytest.raises(ConfigError, match="runs NNCF's OpenVINO IR"):
        load_runner(fp32_artifact, backend="openvino", variant="nncf", precision="int8")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("manifest.json", "model.xml"):
        (broken / f).write_bytes((nncf_ir / f).read_bytes())
    with pytest.raises(IntegrityError, match="model.bin: missing, though manifest.json lists it"):
        load_runner(broken, backend="openvino", variant="nncf").activate()


@needs_nncf
def test_bench_measures_the_row(fp32_artifact, random_checkpoint, tmp_path, monkeypatch):
    opts = BenchOptions(
        report=tmp_path / "rep",
        checkpoint=random_checkpoint,
        backends="openvino",
        precisions="int8",
        tiles=2,
        tile=TILE,
        warmup=0,
        iterations=2,
        calib_tiles=2,
        eval_tiles=1,
        skip="openvino-int8",
    )
    report = run_bench(opts)
    (row,) = report["rows"]
    folder = tmp_path / "rep" / "artifacts" / "int8-nncf"
    assert (row["backend"], row["precision"], row["variant"]) == ("openvino", "int8", "nncf") and row["model_path"] == str(folder)
    assert report["exported"] == ["fp32", "int8-nncf"] and not (tmp_path / "rep" / "artifacts" / "int8").exists()
    assert row["model_mb"] == pytest.approx(sum(f.stat().st_size for f in nncf_peer.model_files(folder)) / 2**20)
    assert np.isfinite(row["psnr_delta"]) and np.isfinite(row["miou_delta"]) and row["peak_mem_mb"] is not None
    assert row["graph_sha256"] is None and row["export_gate"]["within_budget"] is None
    # A second bench reuses the fp32 artifact and NNCF's IR; without nncf the row is listed as skipped, with the reason.
    without_nncf(monkeypatch)
    again = run_bench(BenchOptions(**{**opts.__dict__, "precisions": "fp32,int8", "skip": "openvino-int8,openvino-fp32-default"}))
    assert again["exported"] == [] and [r["variant"] for r in again["rows"]] == [""]
    assert again["skipped"] == [
        {
            "backend": "openvino",
            "precision": "int8",
            "variant": "nncf",
            "device": "cpu",
            "reason": "nncf is not installed (pip install 'tdpcr-edge[nncf]')",
        }
    ]
