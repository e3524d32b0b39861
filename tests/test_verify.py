"""`tdpcr-edge verify` and the golden set every artifact carries: digests checked by every
loader, the golden drift equal to export's, Polygraphy's comparator on the golden files."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tdpcr_edge import golden
from tdpcr_edge.backends.factory import load_runner
from tdpcr_edge.contract import file_digests, file_sha256, read_manifest
from tdpcr_edge.errors import DriftBudgetError, IntegrityError
from tdpcr_edge.export import ExportOptions, run_export
from tdpcr_edge.verify import verify

TILE = 64


@pytest.fixture(scope="module")
def fp32_artifact(tmp_path_factory):
    # The shipped (trained) model: an untrained one's scores hardly move when its weights do.
    out = tmp_path_factory.mktemp("verify") / "fp32"
    run_export(ExportOptions(out=out, precision="fp32", tile=TILE, eval_tiles=4))
    return out


def copy(art: Path, tmp_path: Path) -> Path:
    dest = tmp_path / art.name
    shutil.copytree(art, dest)
    return dest


def change_weights(model: Path, scale: float) -> None:
    """Scale the largest float initializer: the graph stays valid, its outputs change."""
    proto = onnx.load(str(model))
    init = max((i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT), key=lambda i: np.prod(i.dims))
    values = onnx.numpy_helper.to_array(init) * scale
    init.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), init.name))
    onnx.save(proto, str(model))


def rerecord(art: Path) -> None:
    """What someone who changed the weights would do to pass a digest check: record new digests."""
    m = read_manifest(art)
    m["files"] = file_digests(art)
    m["onnx_sha256"] = file_sha256(art / "model.onnx")
    (art / "manifest.json").write_text(json.dumps(m))


def test_artifact_carries_a_golden_set_with_digests(fp32_artifact):
    m = read_manifest(fp32_artifact)
    g = m["golden"]
    assert g["tiles"] == golden.SMALL_COUNT and g["tile"] == TILE
    assert set(g["bytes"]) == set(golden.FILES) and all(n > 0 for n in g["bytes"].values())
    assert {f"golden/{n}" for n in golden.FILES} | {"model.onnx", "checkpoint.pt", "drift.json", "mlm.json"} == set(m["files"])
    read = golden.read(fp32_artifact)
    assert len(read.tiles) == 4 and read.tiles[0].optical.shape == (13, TILE, TILE) and read.tiles[0].labels.dtype == np.int64
    # The Polygraphy files hold the same arrays as the npz.
    feeds = json.loads((fp32_artifact / "golden" / "inputs.json").read_text())
    np.testing.assert_array_equal(golden.from_polygraphy_array(feeds[2]["optical"])[0], read.tiles[2].optical)
    results = json.loads((fp32_artifact / "golden" / "outputs.json").read_text())
    it = results["lst"][0][1][1]["outputs"]["segmentation"]["values"]
    np.testing.assert_array_equal(golden.from_polygraphy_array(it), read.outputs[1]["segmentation"])


def test_verify_repeats_the_drift_export_measured(fp32_artifact, tmp_path):
    out = tmp_path / "v.json"
    r = verify(fp32_artifact, json_out=out)
    exported = read_manifest(fp32_artifact)["golden"]["drift"]
    assert abs(r["psnr_delta"] - exported["psnr_delta"]) < 0.02
    assert abs(r["miou_delta"] - exported["miou_delta"]) < 0.1
    assert r["files_checked"] == 7 and r["within_budget"] and r["backend"] == "ort"
    assert json.loads(out.read_text())["psnr_delta"] == r["psnr_delta"]


def test_a_changed_model_is_refused_by_every_loader(fp32_artifact, tmp_path):
    art = copy(fp32_artifact, tmp_path)
    change_weights(art / "model.onnx", 1.01)
    with pytest.raises(IntegrityError, match=r"model\.onnx: its sha256 is not the one manifest\.json records"):
        verify(art)
    with pytest.raises(IntegrityError, match=r"model\.onnx"):
        load_runner(art, backend="ort")
    for cmd in (["verify", art], ["infer", "--model", art, "--optical", "x.tif", "--sar", "y.tif", "--out", tmp_path / "out"]):
        proc = subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", *map(str, cmd)], capture_output=True, text=True, cwd=tmp_path)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and "model.onnx" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()
    (art / "checkpoint.pt").write_bytes((art / "checkpoint.pt").read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match=r"checkpoint\.pt"):
        load_runner(art, backend="torch")


def test_the_golden_set_catches_what_digests_cannot(fp32_artifact, tmp_path):
    art = copy(fp32_artifact, tmp_path)
    change_weights(art / "model.onnx", 3.0)
    rerecord(art)
    out = tmp_path / "v.json"
    with pytest.raises(DriftBudgetError, match="golden-set drift on ort over budget"):
        verify(art, json_out=out)
    assert json.loads(out.read_text())["within_budget"] is False
    proc = subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", "verify", str(art)], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr


def test_a_missing_golden_file_is_named(fp32_artifact, tmp_path):
    art = copy(fp32_artifact, tmp_path)
    (art / "golden" / "outputs.json").unlink()
    with pytest.raises(IntegrityError, match=r"golden/outputs\.json: missing"):
        verify(art)


def polygraphy(*args):
    exe = Path(sys.executable).parent / "polygraphy"
    return subprocess.run([str(exe), "run", *map(str, args)], capture_output=True, text=True)


def test_polygraphy_checks_the_golden_files(fp32_artifact, tmp_path):
    pytest.importorskip("polygraphy")
    pytest.importorskip("onnxruntime")
    g = fp32_artifact / "golden"
    # The tolerances docs/export.md states for an FP32 artifact on ONNX Runtime.
    tolerances = ["--atol", "1e-4", "--rtol", "1e-3"]
    golden_files = ["--load-inputs", g / "inputs.json", "--load-outputs", g / "outputs.json", *tolerances]
    ok = polygraphy(fp32_artifact / "model.onnx", "--onnxrt", *golden_files)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    art = copy(fp32_artifact, tmp_path)
    change_weights(art / "model.onnx", 1.05)
    bad = polygraphy(art / "model.onnx", "--onnxrt", *golden_files)
    assert bad.returncode != 0 and "FAILED" in bad.stdout + bad.stderr


def keypair(tmp_path):
    key, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    return key, pub


def test_a_signed_artifact_verifies_and_a_changed_or_unsigned_one_is_refused(fp32_artifact, tmp_path):
    from tdpcr_edge.signing import sign

    key, pub = keypair(tmp_path)
    art = copy(fp32_artifact, tmp_path)
    with pytest.raises(IntegrityError, match="is not signed"):
        verify(art, public_key=pub)
    sign(art, key)
    assert verify(art, public_key=pub)["signed"]
    runner = load_runner(art, backend="ort", public_key=pub)  # infer --public-key loads through here
    assert runner.optical_bands == 13
    with open(art / "manifest.json", "ab") as f:
        f.write(b" ")
    with pytest.raises(IntegrityError, match=r"manifest\.json"):
        verify(art, public_key=pub)
    proc = subprocess.run(
        [sys.executable, "-m", "tdpcr_edge.cli", "infer", "--model", str(art), "--public-key", str(pub), "--optical", "x.tif"]
        + ["--sar", "y.tif", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "manifest.json" in proc.stderr and not (tmp_path / "out").exists(), proc.stderr


def test_compare_without_a_checkpoint_measures_against_the_golden_set():
    from tdpcr_edge.contract import shipped_artifact_path
    from tdpcr_edge.export import compare_artifacts

    (row,) = compare_artifacts([shipped_artifact_path()])  # the packaged FP32 artifact has no checkpoint.pt
    assert row["reference"] == "golden" and row["tiles"] == golden.SMALL_COUNT
    assert abs(row["psnr_delta"]) < 1e-3 and row["class_agreement"] > 99.9
