"""What the scene stream's threads pass each other, one frozen dataclass per kind of message.

Markers travel in order with the tiles, so a consumer knows where a column band starts and a
tile row ends without counting: the writer finishes rows at ``RowDone``, and a batch never
spans one. ``eq=False``: the numpy fields are not compared (a message is identified by its
object, as a tuple of arrays never could be compared either)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tiles import Tile


@dataclass(frozen=True, eq=False)
class BandStarted:
    """The tiles that follow belong to column band ``index`` (``column_bands.Band``)."""

    index: int


@dataclass(frozen=True, eq=False)
class TileRead:
    """reader -> inference: one tile's model inputs, padded to the tile size, and its valid
    pixels (the tile's own size). ``skip``: clear enough to pass through without a call."""

    tile: Tile
    optical: np.ndarray
    sar: np.ndarray
    valid: np.ndarray
    skip: bool


@dataclass(frozen=True, eq=False)
class TileInferred:
    """inference -> writer: one tile's outputs, cut to the tile's own size, keyed by model
    output (contract.OUTPUTS), each channels x rows x columns: those of the model's outputs
    the run writes (``scratch.layers_of``), as they are blended (``scratch.Layer``: the
    uncertainty already one band). A skipped tile's are what ``Layer.skipped`` says: its
    input as reconstruction, None as segmentation."""

    tile: Tile
    outputs: dict[str, np.ndarray | None]
    valid: np.ndarray


@dataclass(frozen=True, eq=False)
class RowDone:
    """Tile row ``row`` of the current band has gone by: no later tile of it follows."""

    row: int


@dataclass(frozen=True, eq=False)
class StripFinished:
    """writer -> overview thread: rows [y0, upto) of scene columns ``cols`` are final and
    written; ``arrays`` holds them per output."""

    upto: int
    arrays: dict[str, np.ndarray]
    y0: int
    cols: tuple[int, int]


@dataclass(frozen=True, eq=False)
class EndOfStream:
    """Nothing follows. ``Channel.get`` hands it out too once the run is stopped."""


END = EndOfStream()
