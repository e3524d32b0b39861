"""Assembly: the journal's strips become tiled GeoTIFFs, then cloud-optimised GeoTIFFs, each
renamed into place only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from ...data.normalize import Normalization
from ...io_utils import atomic_path
from .blend import Journal
from .read import SceneReader

OUTPUTS = ("reconstruction.tif", "classes.tif", "confidence.tif")
# COG compression, with the horizontal predictor. Measured on a 1024^2 13-band reconstruction
# (AMD EPYC, 2 cores): ZSTD level 1 23.3 MB in 0.52 s, DEFLATE level 3 24.0 MB in 0.88 s (the
# default before), LZW 27.7 MB in 0.92 s. ZSTD needs GDAL >= 2.3 to read; `deflate` is there
# for older readers. Overviews average (reflectance, reliance) or take the mode (classes):
# GDAL's default cubic resampling cost more than compressing the full resolution.
COMPRESSION = {"zstd": dict(compress="ZSTD", level=1, predictor="YES"), "deflate": dict(compress="DEFLATE", level=3, predictor="YES"),
               "lzw": dict(compress="LZW", predictor="YES"), "none": dict(compress="NONE")}
COG_BLOCK = 512
OVERVIEW_RESAMPLING = {"reconstruction": Resampling.average, "classes": Resampling.mode, "confidence": Resampling.average}


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Decimation factors of the overviews GDAL's COG driver makes by default: halve until
    the level fits one block."""
    factors, f = [], 1
    while max(-(-width // f), -(-height // f)) > block:
        f *= 2
        factors.append(f)
    return factors


def assemble(out: Path, journal: Journal, reader: SceneReader, meta: dict, norm: Normalization, compress: str = "zstd") -> list[str]:
    """Strips -> tiled GeoTIFFs -> COGs, each renamed into place only when complete."""
    from rasterio.shutil import copy as rio_copy

    base = {k: reader.profile[k] for k in ("crs", "transform", "width", "height")}
    tiled = dict(tiled=True, blockxsize=256, blockysize=256) if reader.width >= 256 and reader.height >= 256 else {}
    specs = {
        "reconstruction": dict(count=reader.opt.count, dtype="uint16", nodata=reader.profile.get("nodata") or 0),
        "classes": dict(count=1, dtype="uint8", nodata=255),
        "confidence": dict(count=1, dtype="float32", nodata=float("nan")),
    }
    factors = overview_factors(reader.width, reader.height)
    written = []
    for name, spec in specs.items():
        final = out / f"{name}.tif"
        gtiff = journal.folder / f"{name}.gtiff"  # scratch, removed with the journal folder
        # The scratch GeoTIFF stays uncompressed (the data is compressed once, into the COG)
        # and band-interleaved: strip writes and overviews ran 3x faster than pixel-interleaved.
        with rasterio.open(gtiff, "w", driver="GTiff", interleave="band", **base, **spec, **tiled) as dst:
            if name == "reconstruction":
                dst.descriptions = tuple(norm.optical_bands)
            for strip in journal.strips:
                with np.load(journal.folder / strip["file"]) as npz:
                    data = npz[name]
                data = data if data.ndim == 3 else data[None]
                dst.write(data, window=Window(0, strip["y0"], reader.width, strip["y1"] - strip["y0"]))
            if name == "classes":
                dst.write_colormap(1, {i: (*map(int, c), 255) for i, c in enumerate(meta["colors"])})
                dst.update_tags(classes=json.dumps(meta["classes"]))
            # Overviews built here, on the uncompressed scratch file, and reused by the COG
            # driver: left to it, it writes them to a compressed temporary file and reads them
            # back (0.67 s against 0.32 s for a 1024^2 reconstruction, identical pixels).
            if factors:
                dst.build_overviews(factors, OVERVIEW_RESAMPLING[name])
        with atomic_path(final) as tmp:
            rio_copy(str(gtiff), str(tmp), driver="COG", overviews="FORCE_USE_EXISTING", blocksize=COG_BLOCK, num_threads="ALL_CPUS", **COMPRESSION[compress])
        written.append(final.name)
    return written
