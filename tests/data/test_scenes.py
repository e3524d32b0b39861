import json

import numpy as np
import pytest
import rasterio

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.scenes import FILES, find_scenes, read_scene, write_scene
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.errors import DataError
from tests.helpers import copy_scene, rewrite_raster


def test_synth_layout_and_georeference(scene_dir):
    scenes = find_scenes(scene_dir)
    assert [p.name for p in scenes] == ["scene_0000", "scene_0001", "scene_0002"]
    legend = json.loads((scene_dir / "legend.json").read_text())
    assert len(legend["classes"]) == len(legend["colors"]) == 6
    with rasterio.open(scenes[0] / FILES["optical"]) as src:
        assert src.count == 13 and src.dtypes[0] == "uint16"
        assert src.crs.to_epsg() == 32632 and src.transform.a == 10.0
        assert src.descriptions[8] == "B8A"
    with rasterio.open(scenes[0] / FILES["sar"]) as src:
        assert src.count == 2 and src.dtypes[0] == "float32" and src.descriptions == ("VV", "VH")
    with rasterio.open(scenes[0] / FILES["labels"]) as src:
        assert src.colormap(1)[1][:3] == (0, 100, 0)


def test_round_trip_equals_generator(scene_dir):
    norm = Normalization()
    s = make_scene(11, 1, 64)
    arr = read_scene(scene_dir / "scene_0001", norm)
    np.testing.assert_array_equal(arr.optical, norm.optical_to_model(s.optical_cloudy))
    np.testing.assert_array_equal(arr.sar, norm.sar_to_model(s.sar))
    np.testing.assert_array_equal(arr.labels, s.labels)
    assert arr.valid.all()


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        find_scenes(tmp_path / "nope")


def test_missing_sar(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    (bad / FILES["sar"]).unlink()
    with pytest.raises(DataError, match=r"sar\.tif: missing"):
        read_scene(bad)


def test_wrong_band_count(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    with rasterio.open(bad / FILES["optical"]) as src:
        data = src.read()[:12]
    rewrite_raster(bad / FILES["optical"], data)
    with pytest.raises(DataError, match=r"optical_cloudy\.tif: optical has 12 bands and no band names; the model expects 13"):
        read_scene(bad)


def test_mismatched_size(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    with rasterio.open(bad / FILES["sar"]) as src:
        data = src.read()[:, :32, :]
    rewrite_raster(bad / FILES["sar"], data)
    with pytest.raises(DataError, match=r"sar\.tif: CRS, transform or size \(EPSG:32632, 64x32\) differs from the optical grid"):
        read_scene(bad)


def test_mismatched_crs(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    with rasterio.open(bad / FILES["sar"]) as src:
        data = src.read()
    rewrite_raster(bad / FILES["sar"], data, crs="EPSG:4326")
    with pytest.raises(DataError, match="CRS, transform or size .* differs from the optical grid"):
        read_scene(bad)


def test_truncated_tiff(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    raw = (bad / FILES["optical"]).read_bytes()
    (bad / FILES["optical"]).write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataError, match=r"optical_cloudy\.tif: cannot open optical"):
        read_scene(bad)


def test_nan_and_nodata_are_masked_not_propagated(scene_dir, tmp_path):
    bad = tmp_path / "s"
    copy_scene(scene_dir / "scene_0000", bad)
    with rasterio.open(bad / FILES["sar"]) as src:
        data = src.read()
    data[0, 5, 7] = np.nan
    rewrite_raster(bad / FILES["sar"], data)
    arr = read_scene(bad)
    assert not arr.valid[5, 7] and arr.valid.sum() == 64 * 64 - 1
    assert np.isfinite(arr.sar).all() and np.isfinite(arr.optical).all()


def test_write_scene_is_atomic(tmp_path, monkeypatch):
    import tdpcr_edge.data.scenes as scenes

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(scenes, "write_legend", boom)
    monkeypatch.setattr(scenes.rasterio, "open", boom)
    with pytest.raises(OSError):
        write_scene(tmp_path / "scene", make_scene(0, 0, 32))
    assert list(tmp_path.iterdir()) == []
