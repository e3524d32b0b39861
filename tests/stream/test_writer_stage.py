"""The writer stage alone: hand-made inferred tiles through a Channel, no reader, no runner."""

from __future__ import annotations

import threading

import numpy as np
import rasterio

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.stream.channel import Channel
from tdpcr_edge.stream.column_bands import EdgePieces, column_bands
from tdpcr_edge.stream.journal import Journal
from tdpcr_edge.stream.messages import END, BandStarted, RowDone, StripFinished, TileInferred
from tdpcr_edge.stream.record import CpuTime, Stages
from tdpcr_edge.stream.scratch import ScratchRasters, layers_of
from tdpcr_edge.stream.tiles import TileGrid, spans
from tdpcr_edge.stream.write import WriterStage

BANDS, CLASSES = 2, 3
LAYERS = layers_of(("reconstruction", "segmentation", "reliance"))


def _scratch(folder, height, width) -> ScratchRasters:
    base = dict(
        driver="GTiff",
        interleave="band",
        crs="EPSG:32632",
        transform=rasterio.transform.from_origin(0, 10 * height, 10, 10),
        width=width,
        height=height,
    )
    specs = {
        "reconstruction": dict(base, count=BANDS, dtype="uint16", nodata=0),
        "classes": dict(base, count=1, dtype="uint8", nodata=255),
        "confidence": dict(base, count=1, dtype="float32", nodata=float("nan")),
    }
    return ScratchRasters(folder, specs)


def test_the_writer_puts_each_tiles_owned_pixels_where_the_tile_lies(tmp_path):
    """Two tile rows of three tiles, each with its own random values: every pixel a tile owns
    (weight 1, no neighbour reaches it) holds that tile's values in the scratch rasters, and
    each tile row's finished rows leave as one strip. A tile shifted or swapped fails."""
    grid = TileGrid(56, 80, 32, 8)
    bands = column_bands(grid)
    norm = Normalization()
    scratch = _scratch(tmp_path, grid.height, grid.width)
    journal = Journal(tmp_path, {"run": 1}, scratch)
    journal.start()
    channel = Channel(queue_depth=64, outputs=LAYERS)
    channel.scratch_ready.set()
    writer = WriterStage(channel, grid, bands, (0, 0), journal, EdgePieces(tmp_path), norm, LAYERS, BANDS, CLASSES, Stages(), CpuTime())

    rng = np.random.default_rng(7)
    tiles, sent = [], [BandStarted(0)]
    for r in range(len(grid.ys)):
        for t in grid.row(r):
            h, w = int(t.window.height), int(t.window.width)
            valid = np.ones((h, w), bool)
            valid[h // 2, w // 2] = False  # one invalid owned pixel per tile: nodata there
            outputs = {
                "reconstruction": rng.random((BANDS, h, w), dtype=np.float32),
                "segmentation": rng.standard_normal((CLASSES, h, w)).astype(np.float32),
                "reliance": rng.random((1, h, w), dtype=np.float32),
            }
            msg = TileInferred(t, outputs, valid)
            tiles.append(msg)
            sent.append(msg)
        sent.append(RowDone(r))
    sent.append(END)
    for msg in sent:
        channel.results.put(msg)

    thread = threading.Thread(target=channel.guarded(writer.run))
    thread.start()
    strips = [channel.strips.get(timeout=30) for _ in grid.ys]  # the writer holds one strip in the queue at a time
    thread.join(30)
    assert not thread.is_alive() and channel.errors == []
    assert all(isinstance(s, StripFinished) and s.cols == (0, grid.width) for s in strips)
    assert [(s.y0, s.upto) for s in strips] == [(0, grid.final_rows(0)), (grid.final_rows(0), grid.height)]
    assert journal.flushed == grid.height

    with rasterio.open(scratch.path("reconstruction")) as src:
        recon = src.read()
    with rasterio.open(scratch.path("classes")) as src:
        classes = src.read(1)
    with rasterio.open(scratch.path("confidence")) as src:
        confidence = src.read(1)
    ys, xs = spans(grid.ys, grid.height, grid.tile, grid.overlap), spans(grid.xs, grid.width, grid.tile, grid.overlap)
    for msg in tiles:
        t = msg.tile
        y, x = int(t.window.row_off), int(t.window.col_off)
        (a0, a1), (b0, b1) = ys.owned[t.row], xs.owned[t.col]
        assert a1 > a0 and b1 > b0
        own = (slice(a0, a1), slice(b0, b1))
        at = (slice(y + a0, y + a1), slice(x + b0, x + b1))
        valid = msg.valid[own]
        want_recon = norm.optical_from_model(msg.outputs["reconstruction"][(slice(None), *own)].copy())
        np.testing.assert_array_equal(recon[(slice(None), *at)][:, valid], want_recon[:, valid])
        np.testing.assert_array_equal(classes[at][valid], np.argmax(msg.outputs["segmentation"][(slice(None), *own)], axis=0)[valid])
        np.testing.assert_array_equal(confidence[at][valid], msg.outputs["reliance"][0][own][valid])
        # The tile's invalid pixel, where it lands: nodata in every output.
        assert (
            (recon[(slice(None), *at)][:, ~valid] == 0).all()
            and (classes[at][~valid] == 255).all()
            and np.isnan(confidence[at][~valid]).all()
        )
