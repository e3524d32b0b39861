"""Accuracy of a streamed scene against a reference, read strip by strip (bounded memory).

Scene figures pool all valid pixels of the scene (PSNR from the pooled MSE; SSIM, SAM, MAE
averaged over pixels, SSIM maps computed per 256-row strip); with a cloud map the same
figures come per thickness bin, as `tdpcr-edge eval` reports them. Classes are scored only
where the model has them (``classes.tif``): a model that reconstructs alone gets no mIoU."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..data.normalize import Normalization
from ..data.synthetic import THICKNESS_BINS
from ..errors import DataError
from ..metrics import SegmentationScores, _psnr_from_mse
from ..scoring import Evaluation

STRIP = 256
SCENE = {"scene": (-1.0, 2.0)}


def _open_matching(path: Path, reader, what: str, bands: int | None):
    src = rasterio.open(path)
    if src.shape != (reader.height, reader.width) or src.crs != reader.opt.crs or not src.transform.almost_equals(reader.opt.transform):
        raise DataError(f"{path}: {what} is not on the optical grid ({src.width}x{src.height}, {src.crs}); co-register it first")
    if bands is not None and src.count != bands:
        raise DataError(f"{path}: {what} has {src.count} bands, expected {bands}")
    return src


def _open_reference(path, reader, norm: Normalization):
    """The cloud-free reference, laid out like any optical input (a stack, band files, a STAC
    item) and read on the optical's grid with its bands."""
    from ..data.bandstack import BandStack
    from ..data.inputs import resolve_optical

    bands = resolve_optical(path, norm.optical_bands, norm.optical_scale)
    return BandStack(
        bands, "reference", grid=reader.opt.grid, align=bands.layout != "stack", misfit="co-register it with the optical first"
    )


def score_outputs(out: Path, opts, reader, norm: Normalization, num_classes: int, segments: bool = True) -> dict:
    """The scene's scores; ``segments``: the model wrote classes.tif, scored against the labels."""
    bins = {**SCENE, **(THICKNESS_BINS if opts.cloud else {})}
    ev = Evaluation(num_classes, bins)
    ref = _open_reference(opts.reference, reader, norm) if opts.reference else None
    lab = _open_matching(Path(opts.labels), reader, "labels", 1) if opts.labels and segments else None
    cld = _open_matching(Path(opts.cloud), reader, "cloud map", 1) if opts.cloud else None
    with (
        rasterio.open(out / "reconstruction.tif") as rec_src,
        rasterio.open(out / "classes.tif") if lab is not None else contextlib.nullcontext() as cls_src,
    ):
        for y in range(0, reader.height, STRIP):
            win = Window(0, y, reader.width, min(STRIP, reader.height - y))
            optical, _, valid = reader.read(win)
            cloud = cld.read(1, window=win).astype(np.float32) if cld else np.zeros(valid.shape, np.float32)
            # 255 marks the pixels the stream wrote no class for (nodata).
            classes = cls_src.read(1, window=win) if lab is not None else None
            ev.add(
                norm.optical_to_model(rec_src.read(window=win)) if ref is not None else None,
                np.minimum(classes, num_classes - 1) if classes is not None else None,
                valid=valid,
                optical=optical,
                clear=norm.optical_to_model(ref.read(window=win)) if ref is not None else None,
                labels=lab.read(1, window=win).astype(np.int64) if lab is not None else None,
                cloud=np.nan_to_num(cloud),
                seg_valid=valid & (classes != 255) if classes is not None else None,
            )
    for src in (ref, lab, cld):
        if src is not None:
            src.close()
    m_bins, i_bins, s_bins = ev.model_scores.compute_bins(), ev.input_scores.compute_bins(), ev.seg.compute_bins()
    result = {
        "model": {**m_bins.get("scene", {}), **{k: v for k, v in s_bins.get("scene", {}).items() if k != "pixels"}},
        "input": i_bins.get("scene", {}),
        "bins": {},
    }
    # Raw sums, so that an archive pools its scenes exactly (pool_accuracy), not by averaging scores.
    result["sums"] = {
        "model": dict(ev.model_scores.pooled["scene"]),
        "input": dict(ev.input_scores.pooled["scene"]),
        "confusion": ev.seg.by_bin["scene"].compute().tolist() if lab is not None else None,
    }
    for name in THICKNESS_BINS:
        if name in m_bins or name in s_bins:
            result["bins"][name] = {
                "model": {**m_bins.get(name, {}), **{k: v for k, v in s_bins.get(name, {}).items() if k != "pixels"}},
                "input": i_bins.get(name, {}),
            }
    return result


def pool_accuracy(sums: list[dict]) -> dict:
    """Accuracy over several scenes from their ``sums``: PSNR from the pooled squared error,
    SSIM, SAM and MAE over all valid pixels, mIoU and OA from the summed confusion matrix."""
    out: dict = {}
    for side in ("model", "input"):
        acc = {k: sum(s[side][k] for s in sums) for k in ("se", "ae", "ssim", "sam", "px", "bands")} if sums else {}
        if acc.get("px"):
            out[side] = {
                "psnr": _psnr_from_mse(acc["se"] / acc["bands"]),
                "ssim": acc["ssim"] / acc["px"],
                "sam": acc["sam"] / acc["px"],
                "mae": acc["ae"] / acc["bands"],
                "pixels": acc["px"],
            }
    matrices = [np.asarray(s["confusion"], np.int64) for s in sums if s.get("confusion") is not None]
    if matrices:
        out.setdefault("model", {}).update({k: v for k, v in SegmentationScores._scores(sum(matrices)).items() if k != "pixels"})
    return out
