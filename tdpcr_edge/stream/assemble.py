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
from .scratch import LAYERS

# Every file a stream may write; a run writes those of its model's outputs (scratch.layers_of).
OUTPUTS = tuple(f"{name}.tif" for name in LAYERS)
# COG compression, with the horizontal predictor. ZSTD level 1 is the default: of the three it
# writes the smallest files in the least time (docs/streaming.md has the figures). ZSTD needs
# GDAL >= 2.3 to read; `deflate` is there for older readers. Overviews average or take the
# mode (scratch.LAYERS).
COMPRESSION = {
    "zstd": dict(compress="ZSTD", level=1, predictor="YES"),
    "deflate": dict(compress="DEFLATE", level=3, predictor="YES"),
    "lzw": dict(compress="LZW", predictor="YES"),
    "none": dict(compress="NONE"),
}


class Stopped(Exception):
    """The run stopped (another stage failed) while an output waited to be assembled."""


def assemble(out: Path, journal: Journal, compress: str = "zstd", ready: Callable[[str], bool] | None = None) -> tuple[list[str], float]:
    """Scratch rasters -> COGs, renamed into place together once all are complete; returns the
    files and the CPU seconds of the threads that made them. The outputs are made at once, in
    threads: GDAL's COG copy runs outside the GIL, so the small one-band maps cost no wall time
    beside the reconstruction. ``ready(name)`` waits until
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

    names = list(journal.scratch.specs)
    # Each output is made under a temporary name; if one fails, none is renamed.
    with contextlib.ExitStack() as stack:
        tmps = {name: stack.enter_context(atomic_path(out / f"{name}.tif")) for name in names}
        with ThreadPoolExecutor(len(names), thread_name_prefix="tdpcr-cog") as pool:
            futures = [pool.submit(one, name, tmps[name]) for name in names]
            cpu = sum(f.result() for f in futures)
    return [f"{name}.tif" for name in names], cpu
