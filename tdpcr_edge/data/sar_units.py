"""Whether a SAR raster holds backscatter in dB or as linear power, told from a few of its blocks."""

from __future__ import annotations

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ..errors import DataError


def sar_units(src) -> str:
    """``linear`` when a float raster holds no negative value and its median is below 1 (sigma0
    as power: 0.001 to 1), else ``db`` (backscatter in dB is mostly -30 to 0). Told from nine
    of the file's blocks spread over the scene: a decimated read of a file without overviews
    decodes every block it samples from, which is the whole raster, and would be most of a
    stream's set-up (docs/streaming.md)."""
    if not np.issubdtype(np.dtype(src.dtypes[0]), np.floating):
        return "db"
    bh, bw = src.block_shapes[0]
    parts = []
    origins = {
        (int(src.height * fy) // bh * bh, int(src.width * fx) // bw * bw) for fy in (1 / 6, 1 / 2, 5 / 6) for fx in (1 / 6, 1 / 2, 5 / 6)
    }
    for y, x in sorted(origins):
        parts.append(_valid_values(src, window=Window(x, y, min(bw, src.width - x), min(bh, src.height - y))))
    values = np.concatenate(parts)
    if values.size == 0:  # those blocks all no-data (a swath's edge): the whole scene, decimated
        values = _valid_values(src, out_shape=(src.count, min(src.height, 64), min(src.width, 64)), resampling=Resampling.nearest)
    if values.size == 0:
        return "db"
    return "linear" if values.min() >= 0.0 and np.median(values) < 1.0 else "db"


def _valid_values(src, **read) -> np.ndarray:
    """The finite values of a read where the band's mask holds data, as float64. Pixels and
    masks read apart rather than ``masked=True``: that imports numpy.ma, a cost in the
    stream's set-up where Python writes no bytecode (docs/streaming.md)."""
    try:
        data, masks = src.read(**read), src.read_masks(**read)
    except RasterioError as exc:
        raise DataError(f"{src.name}: SAR unreadable ({str(exc).splitlines()[0]}); the file is truncated or corrupt, re-create it") from exc
    values = np.asarray(data[masks != 0], np.float64)
    return values[np.isfinite(values)]
