"""Where a user would otherwise find out the hard way: the shipped checkpoint on data that is
not synthetic says so in one warning line; error messages keep every word."""

import rasterio

from tdpcr_edge.contract import SHIPPED_ON_REAL_DATA
from tdpcr_edge.data.scenes import FILES, SYNTHETIC_TAG, is_synthetic_raster, write_scene
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.evaluate import run_eval
from tdpcr_edge.stream import StreamOptions, run_stream
from tests.data import fixtures
from tests.helpers import copy_scene, run_main


def _untag(folder):
    for key in ("optical", "sar", "clear"):
        with rasterio.open(folder / FILES[key], "r+") as dst:
            dst.update_tags(**{SYNTHETIC_TAG: "0"})


def test_shipped_checkpoint_warns_on_scenes_that_are_not_synthetic(tmp_path, random_checkpoint):
    synth = write_scene(tmp_path / "synth", make_scene(3, 0, 96))
    real = copy_scene(synth, tmp_path / "real")
    _untag(real)
    assert is_synthetic_raster(synth / FILES["optical"]) and not is_synthetic_raster(real / FILES["optical"])

    def stream(folder, model, out):
        return run_stream(
            StreamOptions(
                optical=folder / FILES["optical"],
                sar=folder / FILES["sar"],
                out=tmp_path / out,
                model=model,
                tile=64,
                overlap=16,
                quicklook=False,
            )
        )

    assert stream(synth, None, "a")["warnings"] == []
    assert stream(real, None, "b")["warnings"] == [SHIPPED_ON_REAL_DATA]
    assert stream(real, str(random_checkpoint), "c")["warnings"] == []  # your own checkpoint: no advice
    assert "train" in SHIPPED_ON_REAL_DATA and "synthetic world only" in SHIPPED_ON_REAL_DATA


def test_eval_warns_on_a_real_data_set_layout(tmp_path, scene_dir, capsys, monkeypatch):
    fixtures.luojia(tmp_path / "luojia")
    assert run_eval(str(scene_dir))["warnings"] == []
    assert run_eval(f"luojia:{tmp_path / 'luojia'}")["warnings"] == [SHIPPED_ON_REAL_DATA]
    code, _, err = run_main(["eval", "--data", f"luojia:{tmp_path / 'luojia'}"], capsys, monkeypatch)
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "synthetic world only" in warnings[0]


def test_error_messages_keep_bracketed_words(tmp_path, capsys, monkeypatch):
    fixtures.luojia(tmp_path / "luojia")
    (tmp_path / "luojia" / "val.txt").unlink()
    code, _, err = run_main(["eval", "--data", f"luojia:{tmp_path / 'luojia'}?split=val"], capsys, monkeypatch)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1
    assert "or edit [splits] in a layout file" in lines[0], lines[0]
