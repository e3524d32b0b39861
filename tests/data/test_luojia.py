"""LuojiaSET-OSFCR as it is published (tests/data/fixtures.py ``luojia_published``): the split
drawn per cloud-cover folder, a user's split file, the baseline 04.00 offset measured and
overridden, one-line errors, and `eval` scored per folder."""

import json
import shutil
from importlib import resources

import numpy as np
import pytest
import rasterio
import torch

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.specs import open_dataset
from tdpcr_edge.errors import ConfigError, DataError
from tdpcr_edge.evaluate import run_eval
from tdpcr_edge.model import build_model
from tdpcr_edge.train.checkpoint import Checkpoint, save_checkpoint
from tests.data import fixtures
from tests.helpers import run_main

FOLDERS = fixtures.LUOJIA_FOLDERS


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("luojia") / "published"
    fixtures.luojia_published(root, per_folder=20)
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Seven samples a folder: one of each in the test split, so `eval` runs five scenes."""
    root = tmp_path_factory.mktemp("luojia") / "small"
    fixtures.luojia_published(root, per_folder=7)
    return root


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """Two folders, no offset in the DN, and a legend."""
    root = tmp_path_factory.mktemp("luojia") / "plain"
    fixtures.luojia_published(root, per_folder=7, offset=0, folders=FOLDERS[:2], legend=True)
    return root


@pytest.fixture(scope="module")
def checkpoint7(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("tiny", num_classes=7)
    path = tmp_path_factory.mktemp("ckpt") / "seven.pt"
    classes = [f"class {i}" for i in range(7)]
    save_checkpoint(path, Checkpoint(model.config, {}, Normalization(), classes, [(i * 30, 0, 0) for i in range(7)]), model)
    return path


def names(spec, split):
    return [s.name for s in open_dataset(spec, split=split).samples]


def test_each_split_is_70_15_15_of_every_folder(root):
    spec = f"luojia:{root}"
    got = {split: open_dataset(spec, split=split) for split in ("train", "val", "test")}
    for split, n in (("train", 14), ("val", 3), ("test", 3)):
        ds = got[split]
        assert {g: sum(s.group == g for s in ds.samples) for g in FOLDERS} == dict.fromkeys(FOLDERS, n)
        assert ds.meta["split"] == {
            "name": split,
            "by": "cloud-cover folder",
            "seed": 42,
            "fractions": {"train": 0.70, "val": 0.15, "test": 0.15},
            "samples": dict.fromkeys(FOLDERS, n),
        }
        assert "70/15/15 per cloud-cover folder, seed 42" in ds.description
    every = [s.name for ds in got.values() for s in ds.samples]
    assert len(every) == len(set(every)) == 100 and sorted(every) == sorted(names(spec, "all"))
    assert names(spec, "test") == [s.name for s in got["test"].samples]  # the same seed draws the same split
    other = names(spec + "?seed=7", "test")
    assert len(other) == 15 and other != names(spec, "test")
    with pytest.raises(ConfigError, match="seed='x'"):
        open_dataset(spec + "?seed=x")


def test_a_split_file_names_the_samples(root, tmp_path):
    split = {"train": ["0-20%/ROIs_01_p100", "20%-40%/ROIs_02_p101"], "test": ["80%-100%/ROIs_03_s2_cloudy_p102.tif"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    spec = f"luojia:{root}?split_file={tmp_path / 'split.json'}"
    assert names(spec, "train") == ["0-20%_ROIs_01_p100", "20%-40%_ROIs_02_p101"]
    assert names(spec, "test") == ["80%-100%_ROIs_03_p102"]
    assert open_dataset(spec).meta["split"]["file"] == str(tmp_path / "split.json")
    with pytest.raises(DataError, match="no LuojiaSET-OSFCR samples in the val split"):
        open_dataset(spec, split="val")
    for bad, match in (
        ({"test": ["0-20%/ROIs_01_p999"]}, r"'0-20%/ROIs_01_p999' \(in test\) is no sample under"),
        ({"test": ["0-20%/ROIs_01_p100"], "train": ["0-20%/ROIs_01_p100"]}, "is listed in test and train"),
    ):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(DataError, match=match) as exc:
            open_dataset(f"luojia:{root}?split_file={tmp_path / 'bad.json'}")
        assert "\n" not in str(exc.value)
    (tmp_path / "bad.json").write_text(json.dumps({"testing": []}))
    with pytest.raises(ConfigError, match="not a split file"):
        open_dataset(f"luojia:{root}?split_file={tmp_path / 'bad.json'}")


def test_a_sample_reads_with_its_mask_and_seven_classes(root):
    ds = open_dataset(f"luojia:{root}")
    assert ds.classes == [f"class {i}" for i in range(7)]
    s, paths = ds[0], ds.samples[0].paths
    assert paths["cloud"].parent.name == "cloud_detection_results" and paths["labels"].parent.name == "land_cover_maps"
    assert s.optical.shape == s.clear.shape == (13, 32, 32) and s.sar.shape == (2, 32, 32)
    with rasterio.open(paths["cloud"]) as src:
        np.testing.assert_array_equal(s.cloud, src.read(1))
    with rasterio.open(paths["optical"]) as src:
        dn = src.read().astype(np.float32)
    np.testing.assert_allclose(s.optical, np.clip((dn - 1000) / 10000, 0, 1), atol=1e-6)
    labels = np.unique(np.concatenate([ds[i].labels.ravel() for i in range(len(ds))]))
    assert set(labels) <= set(range(7)) and {0, 6} <= set(labels)


def test_the_offset_is_measured_and_can_be_overridden(root, plain):
    ds = open_dataset(f"luojia:{root}")
    assert ds.optical_offset == 1000 and ds.meta["optical_offset"]["dn"] == 1000
    assert ds.meta["optical_offset"]["from"].startswith("measured on 5 samples")
    assert "optical offset 1000 DN taken off (measured on 5 samples)" in ds.description
    flat = open_dataset(f"luojia:{plain}")
    assert flat.optical_offset == 0 and flat.meta["optical_offset"]["dn"] == 0 and "optical offset 0 DN (measured on 2" in flat.description
    assert flat.classes[:3] == ["water", "unused", "tree cover"]  # ROOT/legend.json
    kept = open_dataset(f"luojia:{root}?offset=0")
    assert kept.meta["optical_offset"] == {"dn": 0, "from": "?offset="}
    with rasterio.open(kept.samples[0].paths["optical"]) as src:
        dn = src.read().astype(np.float32)
    np.testing.assert_allclose(kept[0].optical, np.clip(dn / 10000, 0, 1), atol=1e-6)
    assert open_dataset(f"luojia:{plain}?offset=1000").optical_offset == 1000
    with pytest.raises(ConfigError, match="offset='-5'"):
        open_dataset(f"luojia:{root}?offset=-5")


def test_bad_layouts_are_one_line(root, plain, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(plain, copy)
    gone = open_dataset(f"luojia:{copy}").samples[0].paths["labels"]
    gone.unlink()
    with pytest.raises(DataError) as exc:
        open_dataset(f"luojia:{copy}")
    assert str(exc.value).startswith(f"{gone}: missing (labels of 0-20%/") and "\n" not in str(exc.value)
    (copy / "40%-60%").mkdir()
    with pytest.raises(DataError, match=r"40%-60%: no ROIs_<RR>_s2_cloudy_p<N>.tif samples in this folder"):
        open_dataset(f"luojia:{copy}")
    # ?layout= reads the root through a layout file, whose split lists the published layout lacks.
    layout = tmp_path / "layout.toml"
    layout.write_text(resources.files("tdpcr_edge.data").joinpath("luojia_layout.toml").read_text())
    with pytest.raises(DataError, match="test.txt: split list missing"):
        open_dataset(f"luojia:{root}?layout={layout}")
    fixtures.luojia(tmp_path / "listed", size=16)
    assert len(open_dataset(f"luojia:{tmp_path / 'listed'}")) == 2  # no cloud-cover folders: the layout file
    with pytest.raises(ConfigError, match="apply to the published layout"):
        open_dataset(f"luojia:{tmp_path / 'listed'}?seed=3")


def test_eval_scores_every_folder(small, checkpoint7, tmp_path, capsys, monkeypatch):
    result = run_eval(f"luojia:{small}", checkpoint7, tmp_path / "eval.json")
    assert list(result["groups"]) == list(FOLDERS) and result["scenes"] == 5
    for g in result["groups"].values():
        assert g.keys() == result.keys() - {"groups", "checkpoint", "data", "dataset", "classes", "warnings"}
        assert g["scenes"] == 1 and "psnr" in g["model"] and "miou" in g["model"]
    written = json.loads((tmp_path / "eval.json").read_text())
    assert list(written["groups"]) == list(FOLDERS) and written["checkpoint"]["arch"] == "tdpcr"
    assert written["dataset"]["optical_offset"]["dn"] == 1000 and written["dataset"]["split"]["seed"] == 42
    code, out, err = run_main(["eval", "--data", f"luojia:{small}", "--checkpoint", checkpoint7], capsys, monkeypatch)
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln.split(":")[0] in FOLDERS]
    assert [ln.split(":")[0] for ln in lines] == list(FOLDERS)
    assert all("1 sample, PSNR" in ln and "SSIM" in ln and "mIoU" in ln for ln in lines), lines


def test_eval_with_fewer_classes_scores_reconstruction_only(small, random_checkpoint):
    result = run_eval(f"luojia:{small}", random_checkpoint)
    assert "psnr" in result["model"] and "miou" not in result["model"]
    assert any("7 land-cover classes, the checkpoint 6" in w for w in result["warnings"])
