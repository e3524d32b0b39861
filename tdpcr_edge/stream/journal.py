"""The journal: the record of finished strips that ``--resume`` trusts, beside the scratch
rasters it writes them into, and the fingerprint of what its strips depend on (a journal of
another run is never continued)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io_utils import file_stamp, write_json
from ..records.run import JOURNAL_SCHEMA
from .scratch import ScratchRasters


class Journal:
    """The record of finished strips, written into the scratch rasters: what resume trusts.
    ``band``: the column band in progress (``column_bands``), ``flushed``: its rows finished."""

    def __init__(self, folder: Path, fingerprint: dict, scratch: ScratchRasters):
        self.folder = folder
        self.path = folder / "journal.json"
        self.fingerprint = fingerprint
        self.scratch = scratch
        self.band, self.flushed = 0, 0
        self.strips: list[dict] = []

    def start(self) -> None:
        """A new run: the scratch rasters created, nothing flushed."""
        self.scratch.create()

    def load(self, strict: bool = True) -> bool:
        """Read the journal; False when there is none, or (``strict=False``) when it belongs
        to a different run, which the caller then starts over."""
        if not self.path.exists():
            return False
        d = self._read(strict)
        if d is None or d["fingerprint"] != self.fingerprint and not strict:
            return False
        if d["fingerprint"] != self.fingerprint:
            raise DataError(
                f"{self.path}: journal of a different run (inputs, model or tiling changed); drop --resume or delete {self.folder}"
            )
        self.scratch.check()
        self.band, self.flushed, self.strips = d["band"], d["flushed"], d["strips"]
        return True

    def _read(self, strict: bool) -> dict | None:
        """The journal's record; None (start over) when it is damaged or of another schema
        version and ``strict`` is False, else one line naming it."""
        from ..records import check
        from ..records.run import JournalRecord

        fix = f"drop --resume or delete {self.folder} to start over"
        try:
            return check(json.loads(self.path.read_text()), JournalRecord, self.path, fix, DataError)
        except (OSError, ValueError, DataError) as exc:
            if not strict:
                return None
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{self.path}: not a journal ({exc}); {fix}") from None

    def add(self, y0: int, y1: int, arrays: dict[str, np.ndarray], band=None) -> None:
        """Rows [y0, y1) of ``band`` (``column_bands.Band``; the whole width when None) are final."""
        x0 = band.x0 if band is not None else 0
        self.scratch.write(y0, y1, arrays, x0)
        self.strips.append({"band": self.band, "y0": y0, "y1": y1})
        self.flushed = y1
        if band is not None and not band.last and y1 == self.scratch.specs["reconstruction"]["height"]:
            self.band, self.flushed = band.index + 1, 0
        write_json(
            self.path,
            {
                "schema_version": JOURNAL_SCHEMA,
                "fingerprint": self.fingerprint,
                "band": self.band,
                "flushed": self.flushed,
                "strips": self.strips,
            },
        )


def journal_fingerprint(opts, meta: dict, reader, workers: int, bands=()) -> dict:
    """What a journal's strips depend on: inputs, model and its outputs, backend, tiling, column bands, batches, workers."""
    model = meta["source"]
    model_id = hashlib.sha256(Path(model).read_bytes()).hexdigest() if Path(model).is_file() else model

    def stats(bands):
        return [file_stamp(p) if Path(p).exists() else [p] for p in dict.fromkeys(f.path for f in bands.files)]

    return {
        "optical": stats(reader.optical_input),
        "sar": stats(reader.sar_input),
        "radiometry": reader.optical_input.radiometry,
        "resolution": reader.opt.grid.res,
        "model": model_id,
        # The files written: an artifact folder's id is its path, which a model of other outputs may take.
        "outputs": list(meta["outputs"]),
        "backend": meta["backend"],
        "tile": opts.tile,
        "overlap": opts.overlap,
        "batch": opts.batch,
        "workers": workers,
        "skip_clear": opts.skip_clear,
        "align": opts.align,
        "size": [reader.height, reader.width],
        "bands": [b.x0 for b in bands],
    }
