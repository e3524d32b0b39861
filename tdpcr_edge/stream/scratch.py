"""The scratch rasters: one uncompressed GeoTIFF per output in the run's ``.partial`` folder,
created before the first tile and written strip by strip as rows become final. They are
what ``--resume`` continues and what the COGs are made from, so every output pixel is
written once before its COG: the journal records which rows are final and holds no pixels
of its own.

Which outputs a run writes is decided here, once: ``LAYERS`` says how each model output
becomes a file, ``layers_of`` picks those of the model's outputs (``meta["outputs"]``), and
every stage after it (blend, scratch rasters, overviews, COGs, journal) goes by that choice.

Each strip is written with the file opened and closed again: GDAL writes the blocks and the
file's directory on close, so a process killed with SIGKILL between strips leaves files that
hold every journaled row. A strip cut short by the kill is written again on resume (rows
from the journal's last row on are rewritten in full)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import DataError
from .overviews import StripOverviews


@dataclass(frozen=True)
class Layer:
    """How one model output becomes one output file."""

    output: str  # the model output it is made from (contract.OUTPUTS)
    dtype: str
    nodata: float  # written where no input pixel is valid
    bands: int | None  # bands written; None: the optical's
    resampling: Resampling  # of its overview levels
    # "reflectance": weighted mean of the tiles, back to DN; "argmax": weighted logits, the
    # class of the largest (an average of classes means nothing); "mean": weighted mean.
    blend: str
    # A tile --skip-clear passes by: "input" (the cloudy input is the output), "none" (no
    # value: nodata unless an overlapping tile has one), "zero" (nothing to rely on, no doubt
    # about an input taken as is).
    skipped: str
    # The output's channels averaged into one band before blending: a per-pixel map a person
    # reads, at a thirteenth of the blend's and the file's cost (the runner keeps every band).
    band_mean: bool = False


# Overviews average reflectance, reliance and variance, and take the mode of classes: GDAL's
# default cubic resampling cost more than compressing the full resolution (docs/streaming.md).
LAYERS = {
    "reconstruction": Layer("reconstruction", "uint16", 0, None, Resampling.average, "reflectance", "input"),
    "classes": Layer("segmentation", "uint8", 255, 1, Resampling.mode, "argmax", "none"),
    "confidence": Layer("reliance", "float32", float("nan"), 1, Resampling.average, "mean", "zero"),
    "uncertainty": Layer("uncertainty", "float32", float("nan"), 1, Resampling.average, "mean", "zero", band_mean=True),
}
# Band-interleaved and tiled: strip writes and GDAL's overviews run faster on it than on a
# pixel-interleaved file (docs/streaming.md).
BLOCK = 256


def layers_of(outputs: Iterable[str]) -> dict[str, Layer]:
    """The output files (name -> layer) of a model with ``outputs``, in ``LAYERS`` order."""
    outputs = set(outputs)
    return {name: layer for name, layer in LAYERS.items() if layer.output in outputs}


def scratch_specs(reader, meta: dict, bands: tuple[str, ...], layers: dict[str, Layer]) -> dict[str, dict]:
    """Creation options of each of ``layers``: the input's grid, the output's type and nodata."""
    base = {k: reader.profile[k] for k in ("crs", "transform", "width", "height")}
    tiled = dict(tiled=True, blockxsize=BLOCK, blockysize=BLOCK) if reader.width >= BLOCK and reader.height >= BLOCK else {}
    common = dict(driver="GTiff", interleave="band", **base, **tiled)
    specs = {
        name: dict(common, count=layer.bands or reader.opt.count, dtype=layer.dtype, nodata=layer.nodata) for name, layer in layers.items()
    }
    extras = {
        "reconstruction": dict(nodata=reader.profile.get("nodata") or 0, descriptions=tuple(bands)),
        "classes": dict(
            colormap={i: (*map(int, c), 255) for i, c in enumerate(meta["colors"])}, tags={"classes": json.dumps(meta["classes"])}
        ),
        "uncertainty": dict(
            descriptions=("variance",),
            tags={"uncertainty": "predicted variance of the reflectance in model space (DN / optical_scale), mean over the optical bands"},
        ),
    }
    for name, spec in specs.items():
        spec.update(extras.get(name, {}))
    return specs


class ScratchRasters:
    """The scratch GeoTIFFs of one run, one per ``specs`` entry, and their overview levels made
    as rows become final (``overviews``; ``cuts``: the columns where column bands meet)."""

    def __init__(self, folder: Path, specs: dict[str, dict], factors: list[int] = (), cuts: tuple[int, ...] = ()):
        self.folder, self.specs = folder, specs
        self.locks = {name: threading.Lock() for name in specs}  # a file's writes against its overviews' reads
        self.overviews = {
            name: StripOverviews(self.path(name), spec, list(factors), LAYERS[name].resampling, self.locks[name], cuts)
            for name, spec in specs.items()
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
        for name in self.specs:
            data = arrays[name]
            data = data if data.ndim == 3 else data[None]
            with self.locks[name], rasterio.open(self.path(name), "r+") as dst:
                dst.write(data, window=Window(x0, y0, data.shape[-1], y1 - y0))
