"""Blending and the scratch rasters the stream writes finished rows into."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.errors import DataError
from tdpcr_edge.runtime.stream.blend import Blender, Journal
from tdpcr_edge.runtime.stream.scratch import ScratchRasters
from tdpcr_edge.runtime.tiles import TileGrid, feather, weight_core


@pytest.mark.parametrize("taper", [(True, True, True, True), (False, True, True, False), (False, False, False, False), (True, False, False, True)])
def test_weight_core_is_exactly_where_the_weight_is_one(taper):
    wt = feather(64, 48, 16, taper)
    r0, r1, c0, c1 = weight_core(wt)
    inside = np.zeros(wt.shape, bool)
    inside[r0:r1, c0:c1] = True
    np.testing.assert_array_equal(inside, wt == 1.0)


def test_weight_core_of_a_weight_never_one():
    assert weight_core(np.full((8, 8), 0.5, np.float32)) == (0, 0, 0, 0)


def test_blend_equals_the_weighted_mean_bit_for_bit():
    """The blender adds a tile's core unweighted (its weight is exactly 1): the strip it
    returns must equal sum(tile * weight) / sum(weight) computed plainly, for every pixel."""
    rng = np.random.default_rng(3)
    h, w, tile, overlap, bands, classes = 150, 170, 64, 16, 3, 4
    grid = TileGrid(h, w, tile, overlap)
    norm = Normalization(optical_scale=10000.0)
    blender = Blender(w, tile, bands, classes, 0)
    acc = {k: np.zeros((n, h, w), np.float64) for k, n in (("recon", bands), ("logits", classes), ("rel", 1))}
    wsum = np.zeros((h, w), np.float64)
    got = {"reconstruction": [], "classes": [], "confidence": []}
    for r in range(len(grid.ys)):
        for t in grid.row(r):
            th, tw = int(t.window.height), int(t.window.width)
            recon = rng.random((bands, tile, tile), dtype=np.float32)
            logits = rng.standard_normal((classes, tile, tile), dtype=np.float32)
            rel = rng.random((tile, tile), dtype=np.float32)
            weight = feather(tile, tile, overlap, t.taper)
            blender.add(t.window, weight, recon, logits, rel, np.ones((tile, tile), bool))
            ys, xs = slice(int(t.window.row_off), int(t.window.row_off) + th), slice(int(t.window.col_off), int(t.window.col_off) + tw)
            wt = weight[:th, :tw].astype(np.float64)
            for k, a in (("recon", recon), ("logits", logits), ("rel", rel[None])):
                acc[k][:, ys, xs] += a[:, :th, :tw] * wt
            wsum[ys, xs] += wt
        upto = grid.final_rows(r)
        if upto > blender.base:
            for k, v in blender.take(upto, norm).items():
                got[k].append(v)
    recon = np.concatenate(got["reconstruction"], axis=1)
    expected = np.rint(np.clip(acc["recon"] / wsum, 0, 1) * 10000).astype(np.uint16)
    # float32 sums against float64 ones: equal to the DN, except where a value sits on a
    # rounding boundary.
    assert np.abs(recon.astype(int) - expected).max() <= 1
    assert (recon != expected).mean() < 1e-3
    np.testing.assert_array_equal(np.concatenate(got["classes"]), np.argmax(acc["logits"], axis=0))
    np.testing.assert_allclose(np.concatenate(got["confidence"]), acc["rel"][0] / wsum, rtol=1e-5)


def test_core_shortcut_changes_no_bit(monkeypatch):
    """The same tiles blended with the core shortcut and with every pixel weighted."""
    import tdpcr_edge.runtime.stream.blend as blend

    rng = np.random.default_rng(5)
    grid = TileGrid(120, 130, 48, 12)
    rows = [[(t, rng.random((2, 48, 48), dtype=np.float32), rng.standard_normal((3, 48, 48), dtype=np.float32), rng.random((48, 48), dtype=np.float32))
             for t in grid.row(r)] for r in range(len(grid.ys))]

    def run():
        b, out = Blender(130, 48, 2, 3, 0), []
        for r, tiles in enumerate(rows):
            for t, recon, logits, rel in tiles:
                b.add(t.window, feather(48, 48, 12, t.taper), recon, logits, rel, np.ones((48, 48), bool))
            if grid.final_rows(r) > b.base:
                out.append(b.take(grid.final_rows(r), Normalization(optical_scale=65535.0)))
        return out

    fast = run()
    monkeypatch.setattr(blend, "weight_core", lambda wt: (0, 0, 0, 0))  # everything weighted
    slow = run()
    assert len(fast) == len(slow) == len(grid.ys)
    for a, b in zip(fast, slow):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def _scratch(tmp_path, width=40, height=30):
    base = dict(driver="GTiff", interleave="band", crs="EPSG:32632", transform=rasterio.transform.from_origin(0, 300, 10, 10), width=width, height=height)
    specs = {"reconstruction": dict(base, count=2, dtype="uint16", nodata=0, descriptions=("B02", "B03")),
             "classes": dict(base, count=1, dtype="uint8", nodata=255, colormap={0: (1, 2, 3, 255)}, tags={"classes": json.dumps(["a"])}),
             "confidence": dict(base, count=1, dtype="float32", nodata=float("nan"))}
    return ScratchRasters(tmp_path, specs)


def test_scratch_rasters_hold_what_each_strip_wrote(tmp_path):
    scratch = _scratch(tmp_path)
    journal = Journal(tmp_path, {"run": 1}, scratch)
    journal.start()
    rng = np.random.default_rng(0)
    full = {"reconstruction": rng.integers(1, 9000, (2, 30, 40)).astype(np.uint16), "classes": rng.integers(0, 5, (30, 40)).astype(np.uint8),
            "confidence": rng.random((30, 40), dtype=np.float32)}
    for y0, y1 in ((0, 12), (12, 25), (25, 30)):
        journal.add(y0, y1, {k: v[..., y0:y1, :] for k, v in full.items()})
    for name, data in full.items():
        with rasterio.open(scratch.path(name)) as src:
            np.testing.assert_array_equal(src.read(1 if data.ndim == 2 else None), data)
            if name == "reconstruction":
                assert src.descriptions == ("B02", "B03")
            if name == "classes":
                assert src.colormap(1)[0] == (1, 2, 3, 255) and json.loads(src.tags()["classes"]) == ["a"]
    again = Journal(tmp_path, {"run": 1}, scratch)
    assert again.load() and again.flushed == 30 and len(again.strips) == 3


def test_resume_refuses_a_damaged_scratch_raster(tmp_path):
    scratch = _scratch(tmp_path)
    journal = Journal(tmp_path, {"run": 1}, scratch)
    journal.start()
    journal.add(0, 10, {"reconstruction": np.ones((2, 10, 40), np.uint16), "classes": np.zeros((10, 40), np.uint8), "confidence": np.zeros((10, 40), np.float32)})
    scratch.path("classes").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match=r"classes\.gtiff: scratch raster .* cannot be read.*delete"):
        Journal(tmp_path, {"run": 1}, scratch).load()
    scratch.path("classes").unlink()
    with pytest.raises(DataError, match=r"classes\.gtiff"):
        Journal(tmp_path, {"run": 1}, scratch).load()


@pytest.mark.parametrize("height", [1372, 1371, 1030])
def test_streamed_overviews_give_the_same_cog_as_overviews_built_after(tmp_path, height):
    """Levels made strip by strip (strips of uneven height, nodata pixels, a level with an
    odd row count below which GDAL builds the rest) against GDAL building every level on the
    complete raster: the COGs must be the same bytes."""
    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy
    import threading

    from tdpcr_edge.runtime.stream.overviews import StripOverviews, overview_factors, streamed_levels

    rng = np.random.default_rng(height)
    w = 1100
    data = rng.integers(1, 10000, (2, height, w)).astype(np.uint16)
    data[:, 40:300, 100:260] = 0  # nodata: left out of the averages
    spec = dict(driver="GTiff", interleave="band", tiled=True, blockxsize=256, blockysize=256, count=2, dtype="uint16", nodata=0, width=w, height=height,
                crs="EPSG:32632", transform=rasterio.transform.from_origin(0, 20000, 10, 10))
    factors = overview_factors(w, height)
    assert streamed_levels(height, factors) == {1372: 2, 1371: 0, 1030: 1}[height]
    cog = dict(driver="COG", overviews="FORCE_USE_EXISTING", blocksize=512, compress="ZSTD", level=1, predictor="YES")

    after = tmp_path / "after.gtiff"
    with rasterio.open(after, "w", **spec) as dst:
        dst.write(data)
    with rasterio.open(after, "r+") as dst:
        dst.build_overviews(factors, Resampling.average)
    rio_copy(str(after), str(tmp_path / "after.tif"), **cog)

    streamed = tmp_path / "streamed.gtiff"
    with rasterio.open(streamed, "w", **spec):
        pass
    ovr = StripOverviews(streamed, spec, factors, Resampling.average, threading.Lock())
    ovr.create()
    y = 0
    for rows in [224, 224, 31, 224] * 10:
        y1 = min(y + rows, height)
        with rasterio.open(streamed, "r+") as dst:
            dst.write(data[:, y:y1], window=Window(0, y, w, y1 - y))
        ovr.update(y1)
        y = y1
        if y == height:
            break
    ovr.finish()
    rio_copy(str(streamed), str(tmp_path / "streamed.tif"), **cog)
    with rasterio.open(tmp_path / "streamed.tif") as src:
        assert src.overviews(1) == factors
    assert (tmp_path / "streamed.tif").read_bytes() == (tmp_path / "after.tif").read_bytes()
