"""Streaming whole scenes: windowed reads, tiled inference, feathered blending, COG outputs.

One concern per module, in the order a tile meets them:

- ``options``: what the stream is asked (StreamOptions), how many inference workers share the
  CPU, which runner runs the model (``open_runner``), the scene lists of ``--pairs``.
- ``read``: the scene's optical and SAR, checked against each other, read by window; the
  reader stage (``ReaderStage``).
- ``pipeline``: the wiring: which stage runs in which thread, joined by which queue, then the
  run record (``run_stream``; the threads: docs/architecture.md).
- ``messages``: what the stages pass each other (``TileRead``, ``TileInferred``, markers).
- ``channel``: the queues, events and errors the stages share.
- ``infer``: the inference stage: tiles batched, run on the workers, handed on in order.
- ``write``: the writer stage: tiles blended, finished rows written, journaled, handed on.
- ``blend``: tiles blended into a strip of rows (``Blender``).
- ``journal``: the record of finished strips that ``--resume`` trusts.
- ``column_bands``: a wide scene's column bands, and the edge pieces where two bands meet.
- ``overview_thread``: the thread that creates the scratch rasters and makes each strip's levels.
- ``scratch``: which files a model's outputs become (``LAYERS``, picked by ``layers_of`` from
  the model's ``meta["outputs"]``, once per run), and the uncompressed GeoTIFFs the finished
  rows are written into.
- ``overviews``: the outputs' overview levels, made strip by strip as rows finish.
- ``assemble``: the complete scratch rasters into cloud-optimised GeoTIFFs.

Tiles go row by row, within a column band when the scene is wider than ``band_width``
(bands one after the other). Once a tile row is blended, the rows no later tile reaches are final:
the writer writes them into the scratch rasters and records them in a journal. A run
killed at any point resumes (``resume=True``) from the first tile row that touches an
unfinished row, with the same per-row batches, so the result is identical to an
uninterrupted run. At the end the scratch rasters get their overviews, are converted to
COGs and renamed into place: outputs appear complete or not at all.
"""

from .assemble import COMPRESSION, OUTPUTS, assemble
from .blend import Blender
from .journal import Journal
from .options import StreamOptions, default_workers, open_runner, scene_jobs, worker_slices
from .overviews import overview_factors
from .pipeline import PARTIAL, PeakMemory, run_stream
from .read import SceneReader, cloud_fraction

__all__ = [
    "COMPRESSION",
    "OUTPUTS",
    "PARTIAL",
    "Blender",
    "Journal",
    "PeakMemory",
    "SceneReader",
    "StreamOptions",
    "assemble",
    "cloud_fraction",
    "default_workers",
    "open_runner",
    "overview_factors",
    "run_stream",
    "scene_jobs",
    "worker_slices",
]
