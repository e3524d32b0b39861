"""Binary inputs damaged as downloads and bad copies damage them (truncated, or header bytes
garbled): a GeoTIFF, one JP2 of a SAFE product, a model.onnx. Through the CLI in this
process: every outcome is a finished run or one line with exit 2, never a traceback, and a
failed run leaves none of its outputs."""

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tdpcr_edge.contract import file_digests, shipped_artifact_path
from tdpcr_edge.data.synth_folders import write_synthetic
from tests.helpers import run_main
from tests.records.test_artifact_records import EXAMPLES

OUTPUTS = ("reconstruction.tif", "classes.tif", "confidence.tif", "run.json")
# A sixth of the record types' count each: every example streams a scene.
BINARY_EXAMPLES = max(4, EXAMPLES // 6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("binary")
    write_synthetic(root / "safe", 1, 96, seed=3, layout="safe")
    write_synthetic(root / "stack", 1, 96, seed=3)
    shutil.copytree(shipped_artifact_path(), root / "art")
    return root


def damage(raw: bytes, kind: str, at: float, garbage: bytes) -> bytes:
    """``truncate``: the first ``at`` of the file; ``garble``: bytes overwritten in its first 1 KiB."""
    if kind == "truncate":
        return raw[: int(len(raw) * at)]
    start = int(min(len(raw), 1024) * at)
    return raw[:start] + garbage + raw[start + len(garbage) :]


damages = st.tuples(st.sampled_from(["truncate", "garble"]), st.floats(0.0, 0.99), st.binary(min_size=1, max_size=64))


def stream(case, args, out, capsys, monkeypatch):
    """The CLI on ``args``: exit 0 with every output, or exit 2 with one line and none."""
    code, _, err = run_main(["infer", *args, "--out", out, "--tile", "64", "--overlap", "8"], capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code in (0, 2), (case, code, err)
    if code == 2:
        assert len(lines) == 1, (case, err)
        assert not any((out / f).exists() for f in OUTPUTS), (case, sorted(p.name for p in out.iterdir()))
    else:
        assert all((out / f).exists() for f in OUTPUTS), case


def fresh(tmp_path, name):
    case = tmp_path / name
    shutil.rmtree(case, ignore_errors=True)
    return case


@settings(max_examples=BINARY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["optical_cloudy.tif", "sar.tif"]), how=damages)
def test_a_damaged_geotiff_streams_or_is_one_line(world, tmp_path, capsys, monkeypatch, target, how):
    scene = fresh(tmp_path, "scene")
    shutil.copytree(world / "stack" / "scene_0000", scene)
    (scene / target).write_bytes(damage((scene / target).read_bytes(), *how))
    out = fresh(tmp_path, "out")
    args = ["--model", world / "art", "--optical", scene / "optical_cloudy.tif", "--sar", scene / "sar.tif"]
    stream((target, how[:2]), args, out, capsys, monkeypatch)


@settings(max_examples=BINARY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(band=st.sampled_from(["B02", "B10", "B8A"]), how=damages)
def test_a_damaged_jp2_in_a_safe_product_streams_or_is_one_line(world, tmp_path, capsys, monkeypatch, band, how):
    scene = fresh(tmp_path, "scene")
    shutil.copytree(world / "safe" / "scene_0000", scene)
    jp2 = next(scene.glob(f"*.SAFE/GRANULE/*/IMG_DATA/*_{band}.jp2"))
    jp2.write_bytes(damage(jp2.read_bytes(), *how))
    out = fresh(tmp_path, "out")
    args = ["--model", world / "art", "--optical", next(scene.glob("*.SAFE")), "--sar", f"{scene / 's1_vv.tif'},{scene / 's1_vh.tif'}"]
    stream((band, how[:2]), args, out, capsys, monkeypatch)


@settings(max_examples=BINARY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(how=damages, digests=st.booleans())
def test_a_damaged_model_onnx_streams_or_is_one_line(world, tmp_path, capsys, monkeypatch, how, digests):
    """With the manifest's digests left as exported (the check refuses the file) or recorded
    anew (as a careless hand edit would: then ONNX Runtime's parser meets the bytes)."""
    art = fresh(tmp_path, "art")
    shutil.copytree(world / "art", art)
    (art / "model.onnx").write_bytes(damage((art / "model.onnx").read_bytes(), *how))
    if digests:
        manifest = json.loads((art / "manifest.json").read_text())
        manifest["files"] = file_digests(art)
        (art / "manifest.json").write_text(json.dumps(manifest))
    scene = world / "stack" / "scene_0000"
    out = fresh(tmp_path, "out")
    args = ["--model", art, "--backend", "ort", "--optical", scene / "optical_cloudy.tif", "--sar", scene / "sar.tif"]
    stream((how[:2], digests), args, out, capsys, monkeypatch)
