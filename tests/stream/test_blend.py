"""Blending and the scratch rasters the stream writes finished rows into."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.errors import DataError
from tdpcr_edge.stream.blend import Blender
from tdpcr_edge.stream.column_bands import EdgePieces, blend_tile, column_bands
from tdpcr_edge.stream.journal import Journal
from tdpcr_edge.stream.scratch import LAYERS, ScratchRasters, layers_of
from tdpcr_edge.stream.tiles import TileGrid, feather, spans


@pytest.mark.parametrize("size", [150, 170, 64, 40])
def test_spans_own_exactly_where_one_tile_has_weight_one(size):
    tile, overlap = 64, 16
    grid = TileGrid(size, size, tile, overlap)
    sp = spans(grid.ys, size, tile, overlap)
    weights = np.zeros((len(grid.ys), size), np.float32)
    for i, t in enumerate(grid.row(0)):
        x, w = int(t.window.col_off), int(t.window.width)
        weights[i, x : x + w] = feather(tile, tile, overlap, t.taper)[tile // 2, :w]
    alone = ((weights > 0).sum(axis=0) == 1) & (weights.max(axis=0) == 1.0)
    np.testing.assert_array_equal(sp.owned_mask, alone)
    for i, ((n0, n1), (e0, e1)) in enumerate(zip(sp.nonzero, sp.owned)):
        x = grid.xs[i]
        assert (weights[i, x + n0 : x + n1] > 0).all() and n0 <= e0 <= e1 <= n1
        assert alone[x + e0 : x + e1].all()


ALL = ("reconstruction", "segmentation", "reliance", "uncertainty")


def _tile_outputs(rng, bands, classes, tile, skipped, outputs=ALL):
    """A tile's random outputs as the inference stage hands them on (a skipped tile's: no logits,
    zero reliance and uncertainty)."""
    made = {
        "reconstruction": rng.random((bands, tile, tile), dtype=np.float32) * 1.2 - 0.1,
        "segmentation": None if skipped else rng.standard_normal((classes, tile, tile), dtype=np.float32),
        "reliance": np.zeros((1, tile, tile), np.float32) if skipped else rng.random((1, tile, tile), dtype=np.float32),
        "uncertainty": np.zeros((1, tile, tile), np.float32) if skipped else rng.random((1, tile, tile), dtype=np.float32) * 1e-3,
    }
    return {k: v for k, v in made.items() if k in outputs}


def _plain_blend(grid, tiles, norm, bands, classes, outputs=ALL):
    """sum(tile * weight) / sum(weight) over every pixel of every tile, in float32 and in tile
    order, as the blender summed before it wrote owned pixels directly; the class logits only
    of the tiles that have them. Every output bands x rows x columns."""
    h, w, tile = grid.height, grid.width, grid.tile
    acc, logit_acc = np.zeros((bands, h, w), np.float32), np.zeros((classes, h, w), np.float32)
    rel_acc, unc_acc, wsum, wcls = (np.zeros((h, w), np.float32) for _ in range(4))
    valid_all = np.zeros((h, w), bool)
    for t, out, valid in tiles:
        ys, xs = (
            slice(int(t.window.row_off), int(t.window.row_off + t.window.height)),
            slice(int(t.window.col_off), int(t.window.col_off + t.window.width)),
        )
        th, tw = int(t.window.height), int(t.window.width)
        wt = feather(tile, tile, grid.overlap, t.taper)[:th, :tw]
        acc[:, ys, xs] += out["reconstruction"][:, :th, :tw] * wt
        for name, a in (("reliance", rel_acc), ("uncertainty", unc_acc)):
            if name in out:
                a[ys, xs] += out[name][0, :th, :tw] * wt
        wsum[ys, xs] += wt
        if out.get("segmentation") is not None:
            logit_acc[:, ys, xs] += out["segmentation"][:, :th, :tw] * wt
            wcls[ys, xs] += wt
        valid_all[ys, xs] |= valid[:th, :tw]
    wd = np.maximum(wsum, 1e-12)
    recon = norm.optical_from_model(acc / wd)
    classes_ = np.argmax(logit_acc, axis=0).astype(np.uint8)
    classes_[wcls == 0] = 255
    conf, unc = rel_acc / wd, unc_acc / wd
    recon[:, ~valid_all], classes_[~valid_all], conf[~valid_all], unc[~valid_all] = 0, 255, np.nan, np.nan
    made = {"reconstruction": recon, "classes": classes_[None], "confidence": conf[None], "uncertainty": unc[None]}
    return {name: made[name] for name in layers_of(outputs)}


@pytest.mark.parametrize(
    "h,w,tile,overlap,base,outputs",
    [
        (150, 170, 64, 16, 0, ALL),
        (120, 130, 48, 12, 0, ALL),
        (150, 170, 64, 16, 60, ALL),
        (40, 30, 64, 16, 0, ALL),
        (65, 70, 64, 16, 0, ALL),
        (300, 97, 64, 30, 100, ALL),
        (114, 114, 64, 16, 0, ALL),
        (150, 170, 64, 16, 60, ("reconstruction",)),
        (120, 130, 48, 12, 0, ("reconstruction", "uncertainty")),
        (114, 114, 64, 16, 0, ("reconstruction", "segmentation")),
    ],
)
def test_blend_is_the_plain_weighted_mean_bit_for_bit(h, w, tile, overlap, base, outputs):
    """Owned pixels written directly and only the overlaps summed: every output equals the
    plain float32 weighted mean over every pixel of every tile, bit for bit, with a skipped
    tile (no classes), nodata pixels, last tiles flush with the edge (wider overlaps; at 114
    pixels the tiles at 48 and 50 leave the middle one owning nothing), and a strip resumed
    from a row the journal had finished; for every output, and for models with fewer."""
    rng = np.random.default_rng(h + w + base)
    bands, classes = 3, 4
    grid = TileGrid(h, w, tile, overlap)
    norm = Normalization(optical_scale=10000.0)
    tiles = []
    scene_valid = np.zeros((h + tile, w + tile), bool)
    scene_valid[:h, :w] = rng.random((h, w)) > 0.02  # every tile reads the same input's nodata
    for r in range(len(grid.ys)):
        for t in grid.row(r):
            valid = scene_valid[int(t.window.row_off) :, int(t.window.col_off) :][:tile, :tile]
            skipped = (t.row, t.col) == (1, 1)
            tiles.append((t, _tile_outputs(rng, bands, classes, tile, skipped, outputs), valid))
    expected = _plain_blend(grid, tiles, norm, bands, classes, outputs)
    blender = Blender(grid, layers_of(outputs), bands, classes, base, norm)
    got = {k: [] for k in expected}
    first = grid.first_row_touching(base)
    for r in range(first, len(grid.ys)):
        for t, out, valid in (x for x in tiles if x[0].row == r):
            blender.add(t.window, feather(tile, tile, overlap, t.taper), out, valid)
        upto = grid.final_rows(r)
        if upto > blender.base:
            for k, v in blender.take(upto).items():
                got[k].append(v)
    for k, v in expected.items():
        np.testing.assert_array_equal(np.concatenate(got[k], axis=-2), v[..., base:, :], err_msg=k)


@pytest.mark.parametrize(
    "h,w,tile,overlap,band_width", [(150, 300, 64, 16, 64), (120, 330, 48, 12, 100), (65, 401, 64, 30, 150), (114, 250, 64, 16, 96)]
)
def test_column_bands_blend_the_same_bits(tmp_path, h, w, tile, overlap, band_width):
    """Band by band, each band's first tile preceded by the band before's edge piece of that
    row: the same sums in the same order as one band, so the same bits (wider overlaps at the
    last tiles, a skipped tile, nodata)."""
    rng = np.random.default_rng(h * w)
    bands, classes = 3, 4
    grid = TileGrid(h, w, tile, overlap)
    layout = column_bands(grid, width=band_width)
    assert len(layout) > 1 and layout[0].x0 == 0 and layout[-1].x1 == w
    assert all(
        a.x1 == b.x0 and a.x1 % 2 == (tile == 48) for a, b in zip(layout, layout[1:])
    )  # odd only where no tile owns up to an even column
    norm = Normalization(optical_scale=10000.0)
    tiles = {}
    scene_valid = np.zeros((h + tile, w + tile), bool)
    scene_valid[:h, :w] = rng.random((h, w)) > 0.02
    for r in range(len(grid.ys)):
        for t in grid.row(r):
            skipped = (t.row, t.col) == (1, layout[1].cols.start - 1)  # a band's last tile, skipped: an edge piece without classes
            valid = scene_valid[int(t.window.row_off) :, int(t.window.col_off) :][:tile, :tile]
            tiles[t.row, t.col] = (t, _tile_outputs(rng, bands, classes, tile, skipped), valid)
    expected = _plain_blend(grid, list(tiles.values()), norm, bands, classes)
    got = {k: np.zeros_like(v) for k, v in expected.items()}
    edges = EdgePieces(tmp_path)
    for band in layout:
        blender = Blender(grid, LAYERS, bands, classes, 0, norm, (band.x0, band.x1))
        y0 = 0
        for r in range(len(grid.ys)):
            for c in band.cols:
                t, out, valid = tiles[r, c]
                th, tw = int(t.window.height), int(t.window.width)
                cut = {k: None if v is None else v[:, :th, :tw] for k, v in out.items()}
                blend_tile(blender, band, grid, edges, t, cut, valid[:th, :tw])
            upto = grid.final_rows(r)
            for k, v in blender.take(upto).items():
                got[k][..., y0:upto, band.x0 : band.x1] = v
            y0 = upto
    for k, v in expected.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def _scratch(tmp_path, width=40, height=30):
    base = dict(
        driver="GTiff",
        interleave="band",
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(0, 300, 10, 10),
        width=width,
        height=height,
    )
    specs = {
        "reconstruction": dict(base, count=2, dtype="uint16", nodata=0, descriptions=("B02", "B03")),
        "classes": dict(base, count=1, dtype="uint8", nodata=255, colormap={0: (1, 2, 3, 255)}, tags={"classes": json.dumps(["a"])}),
        "confidence": dict(base, count=1, dtype="float32", nodata=float("nan")),
    }
    return ScratchRasters(tmp_path, specs)


def test_scratch_rasters_hold_what_each_strip_wrote(tmp_path):
    scratch = _scratch(tmp_path)
    journal = Journal(tmp_path, {"run": 1}, scratch)
    journal.start()
    rng = np.random.default_rng(0)
    full = {
        "reconstruction": rng.integers(1, 9000, (2, 30, 40)).astype(np.uint16),
        "classes": rng.integers(0, 5, (30, 40)).astype(np.uint8),
        "confidence": rng.random((30, 40), dtype=np.float32),
    }
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
    journal.add(
        0,
        10,
        {
            "reconstruction": np.ones((2, 10, 40), np.uint16),
            "classes": np.zeros((10, 40), np.uint8),
            "confidence": np.zeros((10, 40), np.float32),
        },
    )
    scratch.path("classes").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match=r"classes\.gtiff: scratch raster .* cannot be read.*delete"):
        Journal(tmp_path, {"run": 1}, scratch).load()
    scratch.path("classes").unlink()
    with pytest.raises(DataError, match=r"classes\.gtiff"):
        Journal(tmp_path, {"run": 1}, scratch).load()


@pytest.mark.parametrize("nodata", [None, 0, 65535])
def test_level_one_in_memory_is_gdals_average(tmp_path, nodata):
    """The 2x average made from rows in memory against GDAL's decimated average read of the
    same pixels in a file: every pixel equal, with and without nodata."""
    from rasterio.enums import Resampling

    from tdpcr_edge.stream.overviews import half

    rng = np.random.default_rng(7)
    data = rng.integers(0, 10001, (3, 96, 130)).astype(np.uint16)
    if nodata is not None:
        data[rng.random(data.shape) < 0.3] = nodata
        data[:, :4, :4] = nodata  # groups with no valid pixel
    with rasterio.open(
        tmp_path / "a.tif",
        "w",
        driver="GTiff",
        width=130,
        height=96,
        count=3,
        dtype="uint16",
        nodata=nodata,
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(0, 960, 10, 10),
    ) as dst:
        dst.write(data)
    with rasterio.open(tmp_path / "a.tif") as src:
        expected = src.read(out_shape=(3, 48, 65), resampling=Resampling.average)
    np.testing.assert_array_equal(half(data, nodata), expected)


@pytest.mark.parametrize("values,nodata", [(2, 255), (3, 255), (6, 255), (6, None)])
def test_mode_in_memory_is_gdals_mode_overview(tmp_path, values, nodata):
    """The 2x mode made from rows in memory against GDAL's mode overview of the same bytes (a
    paletted class map): every pixel equal, ties included (two values: most groups tie), groups
    with one valid pixel or none."""
    from rasterio.enums import Resampling

    from tdpcr_edge.stream.overviews import mode_2x2

    rng = np.random.default_rng(values)
    data = rng.integers(0, values, (1, 96, 130)).astype(np.uint8)
    if nodata is not None:
        data[rng.random(data.shape) < 0.35] = nodata
        data[:, :4, :4] = nodata
    with rasterio.open(
        tmp_path / "c.tif",
        "w",
        driver="GTiff",
        width=130,
        height=96,
        count=1,
        dtype="uint8",
        nodata=nodata,
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(0, 960, 10, 10),
    ) as dst:
        dst.write(data)
        dst.write_colormap(1, {i: (40 * i, 0, 0, 255) for i in range(values)})
    with rasterio.open(tmp_path / "c.tif", "r+") as dst:
        dst.build_overviews([2], Resampling.mode)
    with rasterio.open(tmp_path / "c.tif", OVERVIEW_LEVEL=0) as src:
        expected = src.read()
    got = mode_2x2(data, nodata)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


OUTPUT_KINDS = {  # dtype, nodata, GDAL resampling name, pixels: the three scratch rasters' kinds
    "reconstruction": ("uint16", 0, "average", lambda rng, shape: rng.integers(1, 10000, shape)),
    "classes": ("uint8", 255, "mode", lambda rng, shape: rng.integers(0, 6, shape)),
    "confidence": ("float32", float("nan"), "average", lambda rng, shape: rng.random(shape)),
}


@pytest.mark.parametrize("kind", list(OUTPUT_KINDS))
@pytest.mark.parametrize("in_memory", [True, False])
@pytest.mark.parametrize("height,cuts", [(1372, ()), (1371, ()), (1030, ()), (1372, (464, 912))])
def test_streamed_overviews_give_the_same_cog_as_overviews_built_after(tmp_path, height, cuts, in_memory, kind, monkeypatch):
    """Levels made strip by strip (strips of uneven height, nodata pixels, a level with an
    odd row count below which GDAL builds the rest), level 1 from the rows in memory or read
    back from the file, in one band or in column bands (meeting at ``cuts``, each band's rows
    top to bottom), for each output's kind (reflectance averaged, classes by mode, float
    reliance with NaN nodata), against GDAL building every level on the complete raster: the
    COGs must be the same bytes."""
    import threading

    from rasterio.enums import Resampling
    from rasterio.shutil import copy as rio_copy

    from tdpcr_edge.stream.overviews import StripOverviews, overview_factors, streamed_levels

    calls = []  # (level made, its source block's shape): levels averaged from rows in memory
    made_in_memory = StripOverviews._half

    def recorded(self, k, block, x0):
        calls.append((k, block.shape))
        return made_in_memory(self, k, block, x0)

    monkeypatch.setattr(StripOverviews, "_half", recorded)

    dtype, nodata, resampling, pixels = OUTPUT_KINDS[kind]
    rng = np.random.default_rng(height)
    w = 1100
    data = pixels(rng, (2, height, w)).astype(dtype)
    data[:, 41:301, 101:261] = nodata  # left out of the averages and the mode: whole 2x2 groups, parts of groups
    data[rng.random(data.shape) < 0.1] = nodata
    spec = dict(
        driver="GTiff",
        interleave="band",
        tiled=True,
        blockxsize=256,
        blockysize=256,
        count=2,
        dtype=dtype,
        nodata=nodata,
        width=w,
        height=height,
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(0, 20000, 10, 10),
    )
    factors = overview_factors(w, height)
    assert streamed_levels(height, factors, w, cuts) == {(1372, ()): 2, (1371, ()): 0, (1030, ()): 1, (1372, (464, 912)): 2}[height, cuts]
    cog = dict(driver="COG", blocksize=512, compress="ZSTD", level=1, predictor="YES")

    after = tmp_path / "after.gtiff"
    with rasterio.open(after, "w", **spec) as dst:
        dst.write(data)
    with rasterio.open(after, "r+") as dst:
        dst.build_overviews(factors, Resampling[resampling])
    rio_copy(str(after), str(tmp_path / "after.tif"), overviews="FORCE_USE_EXISTING", **cog)

    streamed = tmp_path / "streamed.gtiff"
    with rasterio.open(streamed, "w", **spec):
        pass
    ovr = StripOverviews(streamed, spec, factors, Resampling[resampling], threading.Lock(), cuts)
    ovr.create()
    edges = [0, *cuts, w]
    for x0, x1 in zip(edges[:-1], edges[1:]):
        y = 0
        for rows in [224, 224, 31, 224] * 10:
            y1 = min(y + rows, height)
            with rasterio.open(streamed, "r+") as dst:
                dst.write(data[:, y:y1, x0:x1], window=Window(x0, y, x1 - x0, y1 - y))
            ovr.update(y1, data[:, y:y1, x0:x1] if in_memory else None, y, (x0, x1))
            y = y1
            if y == height:
                break
    ovr.finish()
    # In memory, every row of level 1 came from the strips (a strip's odd last row waits for the next).
    # Level 2 likewise from level 1's rows as they were made.
    for k in range(ovr.levels):
        rows = sum(2 * (shape[1] // 2) for level, shape in calls if level == k)
        assert rows == (2 * ovr.sizes[k + 1][0] * len(edges[1:]) if in_memory and ovr.in_memory else 0), k
    assert ovr.in_memory == (ovr.levels > 0)
    rio_copy(str(streamed), str(tmp_path / "streamed.tif"), overviews="FORCE_USE_EXISTING", **cog)
    with rasterio.open(tmp_path / "streamed.tif") as src:
        assert src.overviews(1) == factors
    assert (tmp_path / "streamed.tif").read_bytes() == (tmp_path / "after.tif").read_bytes()
