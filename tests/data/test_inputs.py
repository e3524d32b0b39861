"""Real sensor layouts in: bands by name, Sentinel-2 band files at 10/20/60 m (a SAFE product
with baseline 04.00's offset, a STAC item), VV/VH files in linear power; training that needs
labels only in phase 2."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows
from rasterio.enums import Resampling
from rasterio.warp import reproject

from tdpcr_edge.data.bands import PRESETS, band_of_file, canonical, parse_bands
from tdpcr_edge.data.bandstack import BandStack
from tdpcr_edge.data.inputs import resolve_optical, resolve_sar
from tdpcr_edge.data.safe import safe_offsets
from tdpcr_edge.data.synth_folders import write_synthetic
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.errors import ConfigError, DataError
from tests.data import fixtures
from tests.helpers import run_main

L2A = PRESETS["s2-l2a"]
SIZE = 192  # a multiple of 6: the 60 m bands cover the 10 m grid exactly


def test_presets_names_and_file_names():
    assert (
        len(parse_bands("s2-l1c")) == 13 and "B10" not in parse_bands("s2-l2a") and parse_bands("s2-rgbn") == ("B02", "B03", "B04", "B08")
    )
    assert parse_bands("b2,B3,red,nir08") == ("B02", "B03", "B04", "B8A")
    with pytest.raises(ConfigError, match="B13 is not a Sentinel-2 band"):
        parse_bands("B02,B13")
    assert canonical("Band 1") is None and canonical("swir16") == "B11"
    assert band_of_file("T32TQM_20220101T101431_B8A_20m.jp2") == ("B8A", 20)
    assert band_of_file("T32TQM_20220101T101431_TCI_10m.jp2") is None and band_of_file("x_B02.tif") == ("B02", None)


def test_the_world_makes_the_bands_asked_for():
    full, l2a, rgbn = (make_scene(5, 0, 48, bands=parse_bands(b)) for b in ("s2-l1c", "s2-l2a", "s2-rgbn"))
    assert l2a.optical_cloudy.shape[0] == 12 and rgbn.optical_cloudy.shape[0] == 4
    np.testing.assert_array_equal(l2a.optical_cloudy, np.delete(full.optical_cloudy, 10, axis=0))
    np.testing.assert_array_equal(rgbn.optical_clear, full.optical_clear[[1, 2, 3, 7]])


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    root = tmp_path_factory.mktemp("products")
    for layout in ("safe", "stac", "stack"):
        write_synthetic(root / layout, 1, SIZE, seed=3, bands=L2A, layout=layout)
    return root


@pytest.fixture(scope="module")
def l2a_model(tmp_path_factory):
    from tdpcr_edge.train import TrainOptions, train

    out = tmp_path_factory.mktemp("l2a-model")
    train(
        TrainOptions(out=out, bands="s2-l2a", phase="1", steps=2, batch=2, patch=32, save_every=2, val_scenes=1, val_size=32, device="cpu")
    )
    return out / "model.pt"


def test_safe_product_files_and_metadata(products):
    scene = products / "safe" / "scene_0000"
    safe = next(scene.glob("*.SAFE"))
    inp = resolve_optical(safe, L2A)
    assert inp.layout == "SAFE" and [f.band for f in inp.files] == list(L2A)
    assert {f.offset for f in inp.files} == {-1000.0} and "BOA_ADD_OFFSET" in inp.radiometry
    res = {}
    for f in inp.files:
        with rasterio.open(f.path) as src:
            res[f.band] = src.res[0]
    assert res["B02"] == 10 and res["B05"] == 20 and res["B01"] == 60
    assert safe_offsets(safe / "MTD_MSIL2A.xml")["B12"] == (1.0, -1000.0)
    with BandStack(inp) as stack:
        assert (stack.width, stack.height, stack.grid.res) == (SIZE, SIZE, 10.0)
    # A 13-band model asks for B10, which Level-2A does not have.
    with pytest.raises(
        DataError, match=r"\.SAFE: B10 is missing: this model was trained on s2-l1c; train with --bands s2-l2a for Level-2A data"
    ):
        resolve_optical(safe, PRESETS["s2-l1c"])


def equivalent_stack(inp, out: Path) -> Path:
    """The product as one 10 m stack, made the way a user would by hand: each band reprojected
    (bilinear) onto the 10 m grid, the offset taken off, the bands named."""
    ten = next(f for f in inp.files if "_10m" in f.path)
    with rasterio.open(ten.path) as ref:
        profile = dict(
            driver="GTiff", width=ref.width, height=ref.height, count=len(inp.files), dtype="uint16", crs=ref.crs, transform=ref.transform
        )
    with rasterio.open(out, "w", **profile) as dst:
        for i, f in enumerate(inp.files):
            band = np.zeros((profile["height"], profile["width"]), np.uint16)
            with rasterio.open(f.path) as src:
                reproject(
                    rasterio.band(src, 1),
                    band,
                    src_nodata=0,
                    dst_transform=profile["transform"],
                    dst_crs=profile["crs"],
                    dst_nodata=0,
                    resampling=Resampling.bilinear,
                )
            dst.write(np.clip(band.astype(np.int64) - 1000, 0, None).astype(np.uint16), i + 1)
        dst.descriptions = tuple(f.band for f in inp.files)
    return out


def test_safe_and_stac_give_the_stacks_reconstruction(products, l2a_model, tmp_path, capsys, monkeypatch):
    scene = products / "safe" / "scene_0000"
    safe = next(scene.glob("*.SAFE"))
    stack = equivalent_stack(resolve_optical(safe, L2A), tmp_path / "stack.tif")
    sar = f"{scene / 's1_vv.tif'},{scene / 's1_vh.tif'}"
    # A STAC item over the same JP2 files, its offset in raster:bands.
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "jp2-item",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "geometry": None,
        "properties": {"datetime": "2024-01-01T10:14:31Z"},
        "links": [],
        "assets": {
            f.band: {
                "href": str(Path(f.path).relative_to(scene)),
                "type": "image/jp2",
                "eo:bands": [{"name": f.band}],
                "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}],
            }
            for f in resolve_optical(safe, L2A).files
        },
    }
    (scene / "item-jp2.json").write_text(json.dumps(item))
    outs = {}
    for name, optical in (("stack", stack), ("safe", safe), ("stac", scene / "item-jp2.json")):
        code, _, err = run_main(
            ["infer", "--model", l2a_model, "--optical", optical, "--sar", sar, "--out", tmp_path / name], capsys, monkeypatch
        )
        assert code == 0, err
        with rasterio.open(tmp_path / name / "reconstruction.tif") as src:
            outs[name] = src.read().astype(np.int64)
            assert src.descriptions == L2A and src.res == (10.0, 10.0) and src.shape == (SIZE, SIZE)
    for name in ("safe", "stac"):
        assert np.abs(outs[name] - outs["stack"]).max() <= 1, (name, np.argwhere(np.abs(outs[name] - outs["stack"]) > 1)[:5])
    run = json.loads((tmp_path / "safe" / "run.json").read_text())
    assert run["inputs"]["optical"]["layout"] == "SAFE" and run["inputs"]["optical"]["bands"]["B01"]["offset"] == -1000.0
    assert run["inputs"]["sar"]["layout"] == "SAR files" and "linear power" in run["inputs"]["sar"]["radiometry"]
    stac_run = json.loads((tmp_path / "stac" / "run.json").read_text())
    assert stac_run["inputs"]["optical"]["radiometry"] == "STAC raster:bands scale/offset"


def test_stac_layout_of_synth(products, l2a_model, tmp_path):
    from tdpcr_edge.data.specs import open_dataset

    # Scene folders of every layout read the same pixels (the 10 m bands exactly, offsets taken off).
    reads = {layout: open_dataset(str(products / layout)).read(0) for layout in ("safe", "stac", "stack")}
    ten = [L2A.index(b) for b in ("B02", "B03", "B04", "B08")]
    for layout in ("safe", "stac"):
        np.testing.assert_array_equal(reads[layout].optical[ten], reads["stack"].optical[ten])
        np.testing.assert_allclose(reads[layout].sar, reads["stack"].sar, atol=1e-5)  # linear power back to dB


def test_missing_band_is_one_line_and_writes_nothing(products, tmp_path, capsys, monkeypatch):
    scene = products / "stac" / "scene_0000"
    code, _, err = run_main(
        ["infer", "--optical", scene / "item.json", "--sar", f"{scene / 's1_vv.tif'},{scene / 's1_vh.tif'}", "--out", tmp_path / "o"],
        capsys,
        monkeypatch,
    )
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert (
        code == 2
        and len(lines) == 1
        and "item.json: B10 is missing: this model was trained on s2-l1c; train with --bands s2-l2a" in lines[0]
    ), err
    assert not (tmp_path / "o").exists()


def test_band_file_of_another_extent_or_crs_is_one_line(products, tmp_path):
    stac = products / "stac" / "scene_0000" / "optical"
    files = [stac / f"{b}.tif" for b in ("B02", "B03", "B04", "B08")]
    bad = tmp_path / "B03.tif"
    with rasterio.open(files[1]) as src:
        data, t, profile = src.read(), src.transform, src.profile
    with rasterio.open(bad, "w", **{**profile, "transform": rasterio.Affine(t.a, 0, t.c + 160, 0, t.e, t.f)}) as dst:
        dst.write(data)
    rgbn = PRESETS["s2-rgbn"]
    listed = ",".join(str(p) for p in [files[0], bad, *files[2:]])
    with pytest.raises(DataError, match=r"B03\.tif: extent .* differs from .*B02\.tif .*pass band files of one product"):
        BandStack(resolve_optical(listed, rgbn))
    with rasterio.open(bad, "w", **{**profile, "crs": "EPSG:32633"}) as dst:
        dst.write(data)
    with pytest.raises(DataError, match=r"B03\.tif: CRS EPSG:32633 differs from .*B02\.tif"):
        BandStack(resolve_optical(listed, rgbn))


def test_sar_files_by_polarisation_and_units(products):
    scene = products / "safe" / "scene_0000"
    # Named by polarisation, they are told apart whatever the order they are passed in.
    inp = resolve_sar(f"{scene / 's1_vh.tif'},{scene / 's1_vv.tif'}")
    assert [(f.band, Path(f.path).name, f.units) for f in inp.files] == [("VV", "s1_vv.tif", "linear"), ("VH", "s1_vh.tif", "linear")]
    stack = products / "stack" / "scene_0000" / "sar.tif"
    assert {f.units for f in resolve_sar(stack).files} == {"db"}


def test_stack_by_position_and_by_name(tmp_path):
    s = make_scene(2, 0, 32)
    base = dict(driver="GTiff", width=32, height=32, dtype="uint16", crs="EPSG:32632", transform=rasterio.Affine(10, 0, 0, 0, -10, 0))
    plain = tmp_path / "plain.tif"
    with rasterio.open(plain, "w", count=13, **base) as dst:
        dst.write(s.optical_cloudy)
    # 13 unnamed bands are Level-1C's order: a 4-band model takes its four from them.
    inp = resolve_optical(plain, PRESETS["s2-rgbn"])
    assert [f.index for f in inp.files] == [2, 3, 4, 8]
    with BandStack(inp) as st:
        np.testing.assert_array_equal(st.read(), s.optical_cloudy[[1, 2, 3, 7]])
    named = tmp_path / "named.tif"
    with rasterio.open(named, "w", count=3, **base) as dst:
        dst.write(s.optical_cloudy[[3, 2, 1]])
        dst.descriptions = ("red", "green", "blue")
    with pytest.raises(DataError, match="B08 is missing: this model was trained on s2-rgbn"):
        resolve_optical(named, PRESETS["s2-rgbn"])
    assert [f.index for f in resolve_optical(named, ("B02", "B03", "B04")).files] == [3, 2, 1]


# --- training on what the data has ----------------------------------------------------------


def test_phase_one_without_labels_trains_and_phase_two_says_what_to_add(tmp_path, capsys, monkeypatch):
    from tdpcr_edge.train import TrainOptions, load_checkpoint, train

    root = tmp_path / "sen12mscr"
    fixtures.sen12mscr(root, size=32, with_lc=False)
    metrics = train(
        TrainOptions(out=tmp_path / "p1", data=f"sen12mscr:{root}", phase="1", steps=2, batch=2, patch=32, save_every=2, device="cpu")
    )
    assert metrics["phases"]["1"]["val"]["model"]["psnr"] > 0
    # A 4-band model from the same 13-band patches: bands taken by position in Level-1C order.
    train(
        TrainOptions(
            out=tmp_path / "rgbn",
            data=f"sen12mscr:{root}",
            bands="s2-rgbn",
            phase="1",
            steps=2,
            batch=2,
            patch=32,
            save_every=2,
            device="cpu",
        )
    )
    ckpt = load_checkpoint(tmp_path / "rgbn" / "model.pt")
    assert ckpt.normalization.optical_bands == PRESETS["s2-rgbn"] and ckpt.config.optical_bands == 4
    for phase in ("2", "both"):
        code, _, err = run_main(
            [
                "train",
                "--out",
                tmp_path / f"p{phase}",
                "--data",
                f"sen12mscr:{root}",
                "--phase",
                phase,
                "--steps",
                "2",
                "--batch",
                "2",
                "--patch",
                "32",
                "--init",
                tmp_path / "p1" / "phase1.pt",
            ],
            capsys,
            monkeypatch,
        )
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert (
            code == 2 and len(lines) == 1 and "has no labels; phase 2 trains the land-cover head on labels: add ?labels=dfc" in lines[0]
        ), err
        assert not (tmp_path / f"p{phase}" / "checkpoint.pt").exists()


def test_fine_tune_from_a_checkpoint_with_the_same_bands(l2a_model, tmp_path):
    import torch

    from tdpcr_edge.errors import CheckpointError
    from tdpcr_edge.train import TrainOptions, load_checkpoint, train

    opts = dict(phase="1", steps=1, batch=2, patch=32, save_every=1, val_scenes=1, val_size=32, device="cpu", lr=1e-9)
    train(TrainOptions(out=tmp_path / "ft", init=l2a_model, **opts))
    before, after = load_checkpoint(l2a_model), load_checkpoint(tmp_path / "ft" / "model.pt")
    assert after.normalization.optical_bands == L2A  # the bands come from the checkpoint
    key = (
        "optical_encoder.stem.0.conv.weight" if "optical_encoder.stem.0.conv.weight" in before.state_dict else next(iter(before.state_dict))
    )
    assert torch.allclose(before.state_dict[key], after.state_dict[key], atol=1e-6)  # started from its weights
    with pytest.raises(CheckpointError, match="trained on s2-l2a, this run on s2-rgbn"):
        train(TrainOptions(out=tmp_path / "ft2", init=l2a_model, bands="s2-rgbn", **opts))


@pytest.mark.slow
def test_a_four_band_model_exports_and_streams_a_stac_item(products, tmp_path, capsys, monkeypatch):
    """s2-rgbn end to end: trained, exported at INT8 (calibrated and drift-measured on 4-band
    tiles of the world), streamed from a STAC item of 10 m band COGs."""
    from tdpcr_edge.export import ExportOptions, run_export
    from tdpcr_edge.train import TrainOptions, train

    rgbn = PRESETS["s2-rgbn"]
    train(
        TrainOptions(
            out=tmp_path / "m",
            bands="s2-rgbn",
            phase="1",
            steps=2,
            batch=2,
            patch=32,
            save_every=2,
            val_scenes=1,
            val_size=32,
            device="cpu",
        )
    )
    m = run_export(
        ExportOptions(
            out=tmp_path / "art",
            precision="int8",
            checkpoint=tmp_path / "m" / "model.pt",
            tile=64,
            eval_tiles=2,
            calib_tiles=2,
            allow_drift=True,
        )
    )
    assert tuple(m["normalization"]["optical_bands"]) == rgbn and m["drift"]["tiles"] == 2
    root = tmp_path / "stac"
    write_synthetic(root, 1, 128, seed=4, bands=rgbn, layout="stac")
    scene = root / "scene_0000"
    code, _, err = run_main(
        [
            "infer",
            "--model",
            tmp_path / "art",
            "--optical",
            scene / "item.json",
            "--sar",
            f"{scene / 's1_vv.tif'},{scene / 's1_vh.tif'}",
            "--tile",
            "64",
            "--overlap",
            "8",
            "--out",
            tmp_path / "o",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    with rasterio.open(tmp_path / "o" / "reconstruction.tif") as src:
        assert src.descriptions == rgbn and src.count == 4


def test_pairs_list_and_resolution(products, tmp_path):
    from tdpcr_edge.data.normalize import Normalization
    from tdpcr_edge.data.specs import open_dataset

    scene = products / "stac" / "scene_0000"
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        f'optical,sar,clear\n{scene / "item.json"},"{scene / "s1_vv.tif"},{scene / "s1_vh.tif"}",{scene / "optical_clear.tif"}\n'
    )
    s = open_dataset(f"pairs:{csv}").read(0, Normalization(optical_bands=L2A))
    assert s.optical.shape == (12, SIZE, SIZE) and s.sar.shape == (2, SIZE, SIZE) and s.clear.shape == (12, SIZE, SIZE)
    # --resolution: the bands on a 20 m grid over the same extent.
    with BandStack(resolve_optical(scene / "item.json", L2A), resolution=20.0) as st:
        assert (st.width, st.height, st.grid.res) == (SIZE // 2, SIZE // 2, 20.0) and st.read(
            window=rasterio.windows.Window(0, 0, 8, 8)
        ).shape == (12, 8, 8)
