"""Assembly: the scratch rasters, complete, get their overviews and become cloud-optimised
GeoTIFFs, renamed into place together only when all are complete."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from rasterio.shutil import copy as rio_copy

from ..io_utils import atomic_path
from .journal import Journal
from .overviews import COG_BLOCK
from .scratch import NAMES

OUTPUTS = tuple(f"{name}.tif" for name in NAMES)
# COG compression, with the horizontal predictor. ZSTD level 1 is the default: of the three it
# writes the smallest files in the least time (docs/streaming.md has the figures). ZSTD needs
# GDAL >= 2.3 to read; `deflate` is there for older readers. Overviews average (reflectance,
# reliance) or take the mode (classes): GDAL's default cubic resampling cost more than
# compressing the full resolution (overviews.OVERVIEW_RESAMPLING).
COMPRESSION = {
    "zstd": dict(compress="ZSTD", level=1, predictor="YES"),
    "deflate": dict(compress="DEFLATE", level=3, predictor="YES"),
    "lzw": dict(compress="LZW", predictor="YES"),
    "none": dict(compress="NONE"),
}


class Stopped(Exception):
    """The run stopped (another stage failed) while an output waited to be assembled."""


def assemble(out: Path, journal: Journal, compress: str = "zstd", ready: Callable[[str], bool] | None = None) -> tuple[list[str], float]:
    """Scratch rasters -> COGs, renamed into place together once all three are complete;
    returns the files and the CPU seconds of the threads that made them. The three outputs are
    made at once, in threads: GDAL's COG copy runs outside the GIL, so the small class and
    confidence maps cost no wall time beside the reconstruction. ``ready(name)`` waits until
    that output's overview levels are final (False: the run stopped), so an output's copy
    starts while the others' last levels are still being made."""

    def one(name: str, tmp: Path) -> float:
        c0 = time.thread_time()
        if ready is not None and not ready(name):
            raise Stopped(name)
        # Overviews built on the uncompressed scratch file and reused by the COG driver: left
        # to it, it writes them to a compressed temporary file and reads them back, which takes
        # longer for identical pixels (docs/streaming.md).
        journal.scratch.overviews[name].finish()  # the levels not made during the stream
        rio_copy(
            str(journal.scratch.path(name)),
            str(tmp),
            driver="COG",
            overviews="FORCE_USE_EXISTING",
            blocksize=COG_BLOCK,
            num_threads="ALL_CPUS",
            **COMPRESSION[compress],
        )
        return time.thread_time() - c0

    # Each output is made under a temporary name; if one fails, none is renamed.
    with contextlib.ExitStack() as stack:
        tmps = {name: stack.enter_context(atomic_path(out / f"{name}.tif")) for name in NAMES}
        with ThreadPoolExecutor(len(NAMES), thread_name_prefix="tdpcr-cog") as pool:
            futures = [pool.submit(one, name, tmps[name]) for name in NAMES]
            cpu = sum(f.result() for f in futures)
    return list(OUTPUTS), cpu
