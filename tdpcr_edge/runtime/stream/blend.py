"""Blending and the journal: tiles are added into a strip of rows with feathered weights;
rows no later tile reaches are finished, written into the scratch rasters and recorded in
the journal that ``--resume`` trusts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from ...data.normalize import Normalization
from ...errors import DataError
from ...io_utils import write_json
from ..tiles import weight_core
from .scratch import ScratchRasters

class Journal:
    """The record of finished strips, written into the scratch rasters: what resume trusts."""

    def __init__(self, folder: Path, fingerprint: dict, scratch: ScratchRasters):
        self.folder = folder
        self.path = folder / "journal.json"
        self.fingerprint = fingerprint
        self.scratch = scratch
        self.flushed = 0
        self.strips: list[dict] = []

    def start(self) -> None:
        """A new run: the scratch rasters created, nothing flushed."""
        self.scratch.create()

    def load(self, strict: bool = True) -> bool:
        """Read the journal; False when there is none, or (``strict=False``) when it belongs
        to a different run, which the caller then starts over."""
        if not self.path.exists():
            return False
        d = json.loads(self.path.read_text())
        if d["fingerprint"] != self.fingerprint and not strict:
            return False
        if d["fingerprint"] != self.fingerprint:
            raise DataError(f"{self.path}: journal of a different run (inputs, model or tiling changed); drop --resume or delete {self.folder}")
        self.scratch.check()
        self.flushed, self.strips = d["flushed"], d["strips"]
        return True

    def add(self, y0: int, y1: int, arrays: dict[str, np.ndarray]) -> None:
        self.scratch.write(y0, y1, arrays)
        self.strips.append({"y0": y0, "y1": y1})
        self.flushed = y1
        write_json(self.path, {"fingerprint": self.fingerprint, "flushed": self.flushed, "strips": self.strips})


class Blender:
    """Weighted sums of one strip of rows [base, base + tile), full width."""

    def __init__(self, width: int, tile: int, bands: int, classes: int, base: int):
        self.base = base
        self.recon = np.zeros((bands, tile, width), np.float32)
        self.logits = np.zeros((classes, tile, width), np.float32)
        self.rel = np.zeros((tile, width), np.float32)
        self.w = np.zeros((tile, width), np.float32)
        self.wcls = np.zeros((tile, width), np.float32)
        self.valid = np.zeros((tile, width), bool)
        self._tmp = np.empty((max(bands, classes, 1), tile, tile), np.float32)  # weighted tile, reused

    def _accumulate(self, dst: np.ndarray, src: np.ndarray, wt: np.ndarray, core: tuple[int, int, int, int]) -> None:
        """dst += src * wt. Where the weight is exactly 1 (a tile's core, most of its area)
        src is added as it is: src * 1.0 is src, bit for bit, so the sums are unchanged and
        one pass over the core is saved."""
        r0, r1, c0, c1 = core
        h, w = wt.shape
        dst[..., r0:r1, c0:c1] += src[..., r0:r1, c0:c1]
        for rows, cols in ((slice(0, r0), slice(0, w)), (slice(r1, h), slice(0, w)), (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, w))):
            part = src[..., rows, cols]
            if part.size:
                tmp = self._tmp[: src.shape[0]] if src.ndim == 3 else self._tmp[0]
                tmp = tmp[..., : part.shape[-2], : part.shape[-1]]
                np.multiply(part, wt[rows, cols], out=tmp)
                dst[..., rows, cols] += tmp

    def add(self, window: Window, weight: np.ndarray, recon, logits, rel, valid) -> None:
        y0, x0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        skip = max(0, self.base - y0)  # rows already final (resume)
        if skip >= h:
            return
        sl = (slice(y0 + skip - self.base, y0 + h - self.base), slice(x0, x0 + w))
        wt = weight[skip:h, :w]
        core = weight_core(wt)
        self._accumulate(self.recon[(slice(None), *sl)], recon[:, skip:h, :w], wt, core)
        self._accumulate(self.rel[sl], rel[skip:h, :w], wt, core)
        self.w[sl] += wt
        if logits is not None:
            self._accumulate(self.logits[(slice(None), *sl)], logits[:, skip:h, :w], wt, core)
            self.wcls[sl] += wt
        self.valid[sl] |= valid[skip:h, :w]

    def take(self, upto: int, norm: Normalization) -> dict[str, np.ndarray]:
        """Finish rows [base, upto) and shift the strip up."""
        n = upto - self.base
        w = np.maximum(self.w[:n], 1e-12)
        valid = self.valid[:n]
        invalid = None if valid.all() else ~valid
        recon = self.recon[:, :n]
        recon /= w  # in place: these rows are cleared below
        recon = norm.optical_from_model(recon)
        classes = np.argmax(self.logits[:, :n], axis=0).astype(np.uint8)
        classes[self.wcls[:n] == 0] = 255
        conf = self.rel[:n] / w
        if invalid is not None:
            recon[:, invalid] = 0
            classes[invalid] = 255
            conf[invalid] = np.nan
        out = {"reconstruction": recon, "classes": classes, "confidence": conf}
        keep = self.recon.shape[1] - n  # rows later tiles still add to
        for a in (self.recon, self.logits):
            a[:, :keep] = a[:, n:]  # numpy copies overlapping slices as if through a buffer
            a[:, keep:] = 0
        for a in (self.rel, self.w, self.wcls, self.valid):
            a[:keep] = a[n:]
            a[keep:] = 0
        self.base = upto
        return out


def journal_fingerprint(opts, meta: dict, reader, workers: int) -> dict:
    """What a journal's strips depend on: inputs, model, backend, tiling, batches, workers."""
    def stat(p):
        s = Path(p).stat()
        return [str(Path(p).resolve()), s.st_size, int(s.st_mtime)]

    model = meta["source"]
    model_id = hashlib.sha256(Path(model).read_bytes()).hexdigest() if Path(model).is_file() else model
    def stats(bands):
        return [stat(p) if Path(p).exists() else [p] for p in dict.fromkeys(f.path for f in bands.files)]

    return {"optical": stats(reader.optical_input), "sar": stats(reader.sar_input), "radiometry": reader.optical_input.radiometry,
            "resolution": reader.opt.grid.res, "model": model_id, "backend": meta["backend"],
            "tile": opts.tile, "overlap": opts.overlap, "batch": opts.batch, "workers": workers, "skip_clear": opts.skip_clear, "align": opts.align,
            "size": [reader.height, reader.width]}
