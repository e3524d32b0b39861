"""Real data-set readers on fixtures laid out exactly like SEN12MS-CR (+ SEN12MS lc),
LuojiaSET-OSFCR and generic pairs (tests/data/fixtures.py), and the commands that take
them through --data."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from tdpcr_edge.data.sen12mscr import IGBP_TO_DFC
from tdpcr_edge.data.specs import open_dataset, parse_spec
from tdpcr_edge.errors import ConfigError, DataError
from tests.data import fixtures
from tests.helpers import rewrite_raster


def set_pixel(path, y, x, value):
    """Write one pixel of band 1 in place: a single bad label value."""
    with rasterio.open(path) as src:
        data = src.read()
    data[0, y, x] = value
    rewrite_raster(path, data)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    fixtures.sen12mscr(root / "sen12mscr")
    fixtures.luojia(root / "luojia")
    csv = fixtures.pairs(root / "pairs")
    return {"sen12mscr": root / "sen12mscr", "luojia": root / "luojia", "pairs": csv}


def fresh(roots, name, tmp_path):
    dst = tmp_path / name
    shutil.copytree(roots[name] if name != "pairs" else roots[name].parent, dst)
    return dst


def test_parse_spec():
    assert parse_spec("synthetic") == ("synthetic", "", {})
    assert parse_spec("runs/scenes") == ("folder", "runs/scenes", {})
    assert parse_spec("sen12mscr:/d/S?split=val&labels=dfc") == ("sen12mscr", "/d/S", {"split": "val", "labels": "dfc"})
    assert parse_spec("pairs:list.csv") == ("pairs", "list.csv", {})


def test_sen12mscr_official_splits(roots):
    spec = f"sen12mscr:{roots['sen12mscr']}"
    assert [s.name for s in open_dataset(spec).samples] == ["ROIs1158_spring_106_p30", "ROIs1158_spring_106_p407"]  # test split
    assert [s.name for s in open_dataset(spec + "?split=val").samples] == ["ROIs2017_winter_22_p5"]
    assert [s.name for s in open_dataset(spec, split="train").samples] == ["ROIs1970_fall_3_p1", "ROIs1970_fall_3_p2"]
    assert len(open_dataset(spec + "?split=all")) == 5
    assert [s.name for s in open_dataset(spec + "?split=all&seasons=fall").samples] == ["ROIs1970_fall_3_p1", "ROIs1970_fall_3_p2"]


def test_sen12mscr_sample_and_normalisation(roots):
    ds = open_dataset(f"sen12mscr:{roots['sen12mscr']}")
    s = ds[0]
    paths = ds.samples[0].paths
    assert paths["optical"].name == "ROIs1158_spring_s2_cloudy_106_p30.tif" and paths["clear"].name == "ROIs1158_spring_s2_106_p30.tif"
    with rasterio.open(paths["optical"]) as a, rasterio.open(paths["sar"]) as b:
        dn, db = a.read(), b.read()
    assert s.optical.shape == (13, 32, 32) and s.sar.shape == (2, 32, 32) and s.labels is None
    np.testing.assert_allclose(s.optical, np.clip(dn / 10000.0, 0, 1), atol=1e-6)  # DSen2-CR / UnCRtainTS "default"
    np.testing.assert_allclose(s.sar, np.clip((db + 25.0) / 25.0, 0, 1), atol=1e-6)
    vh = open_dataset(f"sen12mscr:{roots['sen12mscr']}?sar=uncrtaints")[0].sar[1]
    np.testing.assert_allclose(vh, np.clip((db[1] + 32.5) / 32.5, 0, 1), atol=1e-6)  # VH clipped to [-32.5, 0]


def test_sen12mscr_labels_map_igbp_to_simplified_classes(roots):
    ds = open_dataset(f"sen12mscr:{roots['sen12mscr']}?labels=dfc")
    with rasterio.open(ds.samples[0].paths["labels"]) as src:
        igbp = src.read(1)
    np.testing.assert_array_equal(ds[0].labels, IGBP_TO_DFC[igbp])
    assert ds.classes[IGBP_TO_DFC[17]] == "water" and ds.classes[IGBP_TO_DFC[13]] == "urban" and len(ds.classes) == 10


def test_sen12mscr_bad_data(roots, tmp_path):
    root = fresh(roots, "sen12mscr", tmp_path)
    lc = root / "ROIs1158_spring_lc" / "lc_106" / "ROIs1158_spring_lc_106_p30.tif"
    set_pixel(lc, 0, 0, 42)
    with pytest.raises(DataError, match=r"lc_106_p30\.tif: IGBP land-cover codes must be 1..17, found 42"):
        open_dataset(f"sen12mscr:{root}?labels=dfc")[0]
    missing = root / "ROIs1158_spring_s2" / "s2_106" / "ROIs1158_spring_s2_106_p407.tif"
    missing.unlink()
    with pytest.raises(
        DataError, match=r"s2_106_p407\.tif: missing \(clear of patch ROIs1158_spring_106_p407, split test\).*incomplete=skip"
    ):
        open_dataset(f"sen12mscr:{root}")
    # The SAR file missing is found too (the index is built from every modality's folder) ...
    sar = root / "ROIs1158_spring_s1" / "s1_106" / "ROIs1158_spring_s1_106_p30.tif"
    sar.unlink()
    with pytest.raises(DataError, match=r"s1_106_p30\.tif: missing \(sar of patch ROIs1158_spring_106_p30, split test\)"):
        open_dataset(f"sen12mscr:{root}")
    # ... and an explicit option leaves such patches out, counted.
    partial = open_dataset(f"sen12mscr:{root}?incomplete=skip&split=all")
    assert len(partial) == 3 and "(3 patches, 2 incomplete left out)" in partial.description
    with pytest.raises(ConfigError, match="incomplete='maybe'"):
        open_dataset(f"sen12mscr:{root}?incomplete=maybe")
    # A missing file outside the requested split does not matter.
    assert len(open_dataset(f"sen12mscr:{root}?split=val")) == 1
    with pytest.raises(DataError, match="no ROIs1158_spring_s1"):
        open_dataset(f"sen12mscr:{tmp_path}")
    with pytest.raises(ConfigError, match="unknown option bogus"):
        open_dataset(f"sen12mscr:{root}?bogus=1")
    with pytest.raises(ConfigError, match="unknown split 'dev'"):
        open_dataset(f"sen12mscr:{root}?split=dev")


def test_wrong_band_count_names_the_file(roots, tmp_path):
    root = fresh(roots, "sen12mscr", tmp_path)
    bad = root / "ROIs2017_winter_s2_cloudy" / "s2_cloudy_22" / "ROIs2017_winter_s2_cloudy_22_p5.tif"
    with rasterio.open(bad) as src:
        data = src.read()
    rewrite_raster(bad, data[:12])
    with pytest.raises(DataError, match=r"s2_cloudy_22_p5\.tif: optical has 12 bands and no band names; the model expects 13"):
        open_dataset(f"sen12mscr:{root}?split=val")[0]


def test_luojia_default_layout(roots):
    ds = open_dataset(f"luojia:{roots['luojia']}")
    assert [s.name for s in ds.samples] == ["000201", "000202"]
    assert ds.classes[0] == "water"  # from the data set's legend
    s = ds[0]
    assert s.optical.shape == (13, 32, 32) and s.clear.shape == (13, 32, 32) and s.labels.max() < 6
    assert [x.name for x in open_dataset(f"luojia:{roots['luojia']}", split="train").samples] == ["000001", "000002", "000003"]


def test_luojia_custom_layout_selects_bands(roots, tmp_path):
    layout = tmp_path / "layout.toml"
    from importlib import resources

    default = resources.files("tdpcr_edge.data").joinpath("luojia_layout.toml").read_text()
    layout.write_text(default.replace("optical_bands = []", "optical_bands = [2, 3, 4, 8]"))
    ds = open_dataset(f"luojia:{roots['luojia']}?layout={layout}")
    s = ds[0]
    assert s.optical.shape == (4, 32, 32) and s.clear.shape == (4, 32, 32)
    with rasterio.open(ds.samples[0].paths["optical"]) as src:
        np.testing.assert_allclose(s.optical, np.clip(src.read([2, 3, 4, 8]) / 10000.0, 0, 1), atol=1e-6)


def test_luojia_bad_data(roots, tmp_path):
    root = fresh(roots, "luojia", tmp_path)
    label = root / "label" / "000201.tif"
    set_pixel(label, 3, 3, 9)
    with pytest.raises(DataError, match=r"000201\.tif: label value 9 is outside the 6 classes"):
        open_dataset(f"luojia:{root}")[0]
    (root / "sar" / "000202.tif").unlink()
    with pytest.raises(DataError, match=r"sar/000202\.tif: missing \(sar of 000202, listed in test.txt\)"):
        open_dataset(f"luojia:{root}")
    (root / "val.txt").unlink()
    with pytest.raises(DataError, match=r"val\.txt: split list missing"):
        open_dataset(f"luojia:{root}?split=val")


def test_pairs_csv(roots, tmp_path):
    ds = open_dataset(f"pairs:{roots['pairs']}")
    assert [s.name for s in ds.samples] == ["site0", "site1"]
    assert ds[1].clear is not None and ds[1].labels is not None
    root = fresh(roots, "pairs", tmp_path)
    with rasterio.open(root / "img1_s1.tif") as src:
        data = src.read()
    rewrite_raster(root / "img1_s1.tif", data, crs="EPSG:4326")
    with pytest.raises(DataError, match=r"img1_s1\.tif: CRS, transform or size .* differs from the optical grid"):
        open_dataset(f"pairs:{root / 'pairs.csv'}")[1]
    (root / "img0_clear.tif").unlink()
    with pytest.raises(DataError, match=r"img0_clear\.tif: missing \(clear of row site0"):
        open_dataset(f"pairs:{root / 'pairs.csv'}")


def test_export_and_bench_tiles_come_from_the_named_split(roots):
    from tdpcr_edge.data.normalize import Normalization
    from tdpcr_edge.export.heldout import tiles_from

    val = tiles_from(f"luojia:{roots['luojia']}", 4, 32, Normalization(), 6, seed=0, split="val")
    assert [t.name.split("@")[0] for t in val] == ["000101"]
    test = tiles_from(f"sen12mscr:{roots['sen12mscr']}", 8, 16, Normalization(), 6, seed=0)
    assert len(test) == 8 and {t.name.split("@")[0] for t in test} == {"ROIs1158_spring_106_p30", "ROIs1158_spring_106_p407"}


def test_calibration_tiles_of_a_data_set_are_the_tiles_made_one_at_a_time(roots):
    """The lazy calibration tiles of a data spec: counted first, then the same tiles in the
    same order as the list, and the same digest."""
    from tdpcr_edge.data.normalize import Normalization
    from tdpcr_edge.export.heldout import calibration_tiles, tiles_digest, tiles_from

    spec = f"sen12mscr:{roots['sen12mscr']}"
    listed = tiles_from(spec, 8, 16, Normalization(), 6, seed=0, split="test")
    lazy = calibration_tiles(spec, 8, 16, Normalization(), 6, seed=0, split="test")
    assert len(lazy) == len(listed) == 8
    pulled = []
    while (item := lazy.get_next()) is not None:
        pulled.append(item)
    for item, t in zip(pulled, listed, strict=True):
        np.testing.assert_array_equal(item["optical"][0], t.optical)
        np.testing.assert_array_equal(item["sar"][0], t.sar)
    assert lazy.digest() == tiles_digest(listed)
    with pytest.raises(DataError, match="no scene is at least 4096x4096"):
        calibration_tiles(spec, 8, 4096, Normalization(), 6, seed=0, split="test")


def test_infer_jobs_from_a_data_set(roots):
    from tdpcr_edge.stream import scene_jobs

    jobs = scene_jobs(f"sen12mscr:{roots['sen12mscr']}?labels=dfc")
    assert [j["name"] for j in jobs] == ["ROIs1158_spring_106_p30", "ROIs1158_spring_106_p407"]
    assert jobs[0]["reference"].name == "ROIs1158_spring_s2_106_p30.tif" and jobs[0]["labels"] is None  # IGBP codes need the reader
    jobs = scene_jobs(f"luojia:{roots['luojia']}")
    assert jobs[0]["labels"].name == "000201.tif"
    assert [j["name"] for j in scene_jobs(roots["pairs"])] == ["site0", "site1"]


def test_train_takes_classes_and_bands_from_the_data_set(roots, tmp_path):
    from tdpcr_edge.train import TrainOptions, load_checkpoint, train

    layout = tmp_path / "layout.toml"
    from importlib import resources

    layout.write_text(
        resources.files("tdpcr_edge.data")
        .joinpath("luojia_layout.toml")
        .read_text()
        .replace("optical_bands = []", "optical_bands = [2, 3, 4, 8]")
    )
    train(TrainOptions(out=tmp_path / "run", data=f"luojia:{roots['luojia']}?layout={layout}", steps=2, batch=2, patch=16, val_scenes=0))
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt.config.optical_bands == 4 and ckpt.config.num_classes == 6 and ckpt.classes[0] == "water"
    assert ckpt.normalization.optical_bands == ("band2", "band3", "band4", "band8")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_eval_on_data_sets(roots, tmp_path):
    p = run_cli("eval", "--data", f"luojia:{roots['luojia']}", "--json", tmp_path / "l.json")
    assert p.returncode == 0, p.stderr
    result = json.loads((tmp_path / "l.json").read_text())
    assert result["scenes"] == 2 and "miou" in result["model"] and result["model"]["psnr"] > result["input"]["psnr"]
    p = run_cli("eval", "--data", f"sen12mscr:{roots['sen12mscr']}", "--json", tmp_path / "s.json")
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "s.json").read_text())["scenes"] == 2


def test_cli_bad_data_is_one_line(roots, tmp_path):
    root = fresh(roots, "luojia", tmp_path)
    (root / "clear" / "000201.tif").unlink()
    p = run_cli("eval", "--data", f"luojia:{root}", "--json", tmp_path / "e.json")
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "clear/000201.tif: missing" in lines[0], p.stderr
    assert not (tmp_path / "e.json").exists()
