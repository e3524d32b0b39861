"""The scratch rasters: one uncompressed GeoTIFF per output in the run's ``.partial`` folder,
created before the first tile and written strip by strip as rows become final. They are
what ``--resume`` continues and what the COGs are made from, so every output pixel is
written once before its COG: the journal records which rows are final and holds no pixels
of its own.

Each strip is written with the file opened and closed again: GDAL writes the blocks and the
file's directory on close, so a process killed with SIGKILL between strips leaves files that
hold every journaled row. A strip cut short by the kill is written again on resume (rows
from the journal's last row on are rewritten in full)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import DataError
from .overviews import OVERVIEW_RESAMPLING, StripOverviews

NAMES = ("reconstruction", "classes", "confidence")
# Band-interleaved and tiled: strip writes and GDAL's overviews run faster on it than on a
# pixel-interleaved file (docs/streaming.md).
BLOCK = 256


def scratch_specs(reader, meta: dict, bands: tuple[str, ...]) -> dict[str, dict]:
    """Creation options of each output: the input's grid, the output's type and nodata."""
    base = {k: reader.profile[k] for k in ("crs", "transform", "width", "height")}
    tiled = dict(tiled=True, blockxsize=BLOCK, blockysize=BLOCK) if reader.width >= BLOCK and reader.height >= BLOCK else {}
    common = dict(driver="GTiff", interleave="band", **base, **tiled)
    return {
        "reconstruction": dict(
            common, count=reader.opt.count, dtype="uint16", nodata=reader.profile.get("nodata") or 0, descriptions=tuple(bands)
        ),
        "classes": dict(
            common,
            count=1,
            dtype="uint8",
            nodata=255,
            colormap={i: (*map(int, c), 255) for i, c in enumerate(meta["colors"])},
            tags={"classes": json.dumps(meta["classes"])},
        ),
        "confidence": dict(common, count=1, dtype="float32", nodata=float("nan")),
    }


class ScratchRasters:
    """The three scratch GeoTIFFs of one run, and their overview levels made as rows become
    final (``overviews``; ``cuts``: the columns where column bands meet)."""

    def __init__(self, folder: Path, specs: dict[str, dict], factors: list[int] = (), cuts: tuple[int, ...] = ()):
        self.folder, self.specs = folder, specs
        self.locks = {name: threading.Lock() for name in NAMES}  # a file's writes against its overviews' reads
        self.overviews = {
            name: StripOverviews(self.path(name), specs[name], list(factors), OVERVIEW_RESAMPLING[name], self.locks[name], cuts)
            for name in NAMES
        }

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.gtiff"

    def create(self) -> None:
        for name, spec in self.specs.items():
            spec = dict(spec)
            descriptions, colormap, tags = spec.pop("descriptions", None), spec.pop("colormap", None), spec.pop("tags", None)
            with rasterio.open(self.path(name), "w", **spec) as dst:
                if descriptions:
                    dst.descriptions = descriptions
                if colormap:
                    dst.write_colormap(1, colormap)
                if tags:
                    dst.update_tags(**tags)
        for overviews in self.overviews.values():
            overviews.create()

    def check(self) -> None:
        """Resume trusts these files: each must open with the grid this run writes."""
        for name, spec in self.specs.items():
            path = self.path(name)
            try:
                with rasterio.open(path) as src:
                    ok = (src.width, src.height, src.count, src.dtypes[0]) == (spec["width"], spec["height"], spec["count"], spec["dtype"])
            except rasterio.errors.RasterioIOError as exc:
                raise DataError(
                    f"{path}: scratch raster of the interrupted run cannot be read ({exc}); delete {self.folder} and run again"
                ) from exc
            if not ok:
                raise DataError(f"{path}: scratch raster does not match this run's grid; delete {self.folder} and run again")
        for overviews in self.overviews.values():
            overviews.create()  # remade from the rows the scratch rasters hold

    def close(self) -> None:
        """The overview level files' handles (a failed run's too)."""
        for overviews in self.overviews.values():
            overviews.close()

    def write(self, y0: int, y1: int, arrays: dict[str, np.ndarray], x0: int = 0) -> None:
        for name in NAMES:
            data = arrays[name]
            data = data if data.ndim == 3 else data[None]
            with self.locks[name], rasterio.open(self.path(name), "r+") as dst:
                dst.write(data, window=Window(x0, y0, data.shape[-1], y1 - y0))
