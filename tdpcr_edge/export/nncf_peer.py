"""NNCF's post-training INT8, the peer row ``openvino int8 nncf`` of ``tdpcr-edge bench``:
what a user who does not use our quantiser gets by running NNCF (OpenVINO's Neural Network
Compression Framework) on our FP32 graph with its defaults.

``nncf.quantize(model, nncf.Dataset(tiles))`` on the FP32 artifact's model.onnx as OpenVINO
reads it, calibrated on the tiles our INT8 export calibrates on (``export.heldout.
calibration_tiles``, seed ``CALIB_SEED``, the ``val`` split), every parameter at NNCF's
default (preset, subset size, fast bias correction, the overflow fix, which in NNCF 3.x gives
the first convolutions 7-bit weights on every CPU). The result is saved as an OpenVINO IR
(model.xml + model.bin, weights as NNCF left them: no FP16 compression) in an artifact-like
folder beside the precision folders bench exports:

    ARTIFACTS/int8-nncf/model.xml, model.bin   the quantised graph
    ARTIFACTS/int8-nncf/nncf.json              what made it (``RECORD_KEYS``)
    ARTIFACTS/int8-nncf/manifest.json          the FP32 artifact's, for the runtime: precision
                                               int8, format openvino-ir, no export gate

A folder whose nncf.json no longer matches (another NNCF or OpenVINO, another FP32 graph, other
calibration tiles or parameters) is made again; a folder without one is not ours and is
refused. nncf and openvino are imported only when a folder is made.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from ..backends.openvino_runner import IR_FORMAT, NNCF_INSTALL, NNCF_VARIANT, import_openvino
from ..backends.signal_stack import kept_signal_stack
from ..contract import file_digests, file_sha256, read_manifest
from ..data.normalize import Normalization
from ..errors import ConfigError, MissingDependency
from ..io_utils import write_json
from .heldout import CALIB_SEED, calibration_tiles

FOLDER = "int8-nncf"  # under the artifacts folder, beside fp32/, int8/, ...
SOURCE_PRECISION = "fp32"  # the artifact NNCF quantises
PRECISION = "int8"
RECORD = "nncf.json"
# What must match for a folder to be reused (the rest of the record is for the reader).
RECORD_KEYS = ("nncf", "openvino", "source_onnx_sha256", "calibration", "parameters")
OVERFLOW_FIXES = ("default", "enable", "first_layer_only", "disable")


def is_row(combo) -> bool:
    """The bench row that runs NNCF's IR (``openvino int8 nncf``)."""
    return combo.backend == "openvino" and combo.variant == NNCF_VARIANT


def import_nncf():
    try:
        import nncf
    except ImportError as exc:
        raise MissingDependency(f"the openvino int8 nncf row needs NNCF, which is not installed ({exc}); {NNCF_INSTALL}") from None
    return nncf


def model_files(artifact: Path) -> list[Path]:
    """The files holding an artifact folder's graph: model.onnx, or an OpenVINO IR's model.xml
    and model.bin (what the report's size counts)."""
    artifact = Path(artifact)
    if (artifact / "model.onnx").exists() or not (artifact / "model.xml").exists():
        return [artifact / "model.onnx"]
    return [artifact / "model.xml", artifact / "model.bin"]


def _calib_tiles(manifest: dict, calib: str, count: int):
    return calibration_tiles(
        calib,
        count,
        manifest["tile"],
        Normalization.from_dict(manifest["normalization"]),
        manifest["model"]["num_classes"],
        CALIB_SEED,
        split="val",
    )


def wanted(fp32: Path, calib: str = "synthetic", calib_tiles: int = 32, overflow_fix: str = "default") -> dict:
    """The record (``RECORD_KEYS``) a folder made now from the ``fp32`` artifact would carry;
    the calibration tiles are read once for their digest."""
    if overflow_fix not in OVERFLOW_FIXES:
        raise ConfigError(f"unknown NNCF overflow fix {overflow_fix!r}: choose one of {', '.join(OVERFLOW_FIXES)}")
    manifest = read_manifest(fp32)
    if manifest["precision"] != SOURCE_PRECISION or (manifest.get("plugin") or {}).get("enabled"):
        raise ConfigError(
            f"{fp32}: NNCF quantises the plain FP32 artifact, not a {manifest['precision']} one"
            + (" with TDP_PGF plugin nodes" if (manifest.get("plugin") or {}).get("enabled") else "")
        )
    tiles = _calib_tiles(manifest, calib, calib_tiles)
    return {
        "nncf": _version("nncf"),
        "openvino": _version("openvino"),
        "source_onnx_sha256": file_sha256(Path(fp32) / "model.onnx"),
        "calibration": {
            "source": calib,
            "tiles": len(tiles),
            "tile": manifest["tile"],
            "seed": CALIB_SEED,
            "split": "val",
            "tiles_sha256": tiles.digest(),
        },
        # NNCF's own defaults, named: a folder made with another overflow fix is another row.
        "parameters": {
            "preset": "default",
            "subset_size": "default",
            "fast_bias_correction": "default",
            "overflow_fix": overflow_fix,
            "target_device": "default",
            "save_model": "compress_to_fp16=False",
        },
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def read_record(folder: Path) -> dict | None:
    """The folder's nncf.json, or None when there is none or it is unreadable."""
    try:
        return json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def matches(folder: Path, want: dict) -> bool:
    folder = Path(folder)
    record = read_record(folder)
    if record is None or not all((folder / f).is_file() for f in ("model.xml", "model.bin", "manifest.json")):
        return False
    return all(record.get(k) == want[k] for k in RECORD_KEYS)


def ensure(
    fp32: Path,
    out: Path,
    *,
    calib: str = "synthetic",
    calib_tiles: int = 32,
    overflow_fix: str = "default",
    on_stage: Callable[[str], None] | None = None,
) -> bool:
    """NNCF's INT8 IR of the ``fp32`` artifact in ``out``, made unless a matching one is there;
    True when made now. A stale folder of ours (its nncf.json differs) is made again; a folder
    without nncf.json is refused."""
    out = Path(out)
    want = wanted(fp32, calib, calib_tiles, overflow_fix)
    if matches(out, want):
        return False
    if out.exists() and any(out.iterdir()) and read_record(out) is None:
        raise ConfigError(f"{out}: holds something other than NNCF's INT8 IR (no {RECORD}); remove it or pass another --artifacts folder")
    (on_stage or (lambda name: None))("quantise fp32 with NNCF")
    make(fp32, out, want)
    return True


def make(fp32: Path, out: Path, want: dict) -> dict:
    """Quantise the ``fp32`` artifact's model.onnx with NNCF into ``out`` (replaced whole, as
    one rename), as ``want`` (``wanted``'s record) says; returns the record written to nncf.json."""
    fp32, out = Path(fp32), Path(out)
    nncf = import_nncf()
    ov = import_openvino()
    manifest = read_manifest(fp32)
    tiles = _calib_tiles(manifest, want["calibration"]["source"], want["calibration"]["tiles"])
    kwargs = {}
    fix = want["parameters"]["overflow_fix"]
    if fix != "default":
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(overflow_fix=OverflowFix(fix))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        log = logging.getLogger("nncf")
        level = log.level
        log.setLevel(logging.ERROR)  # "Dataset contains only 32 samples, smaller than the requested subset size 300": by design
        try:
            with kept_signal_stack():  # NNCF compiles the graph on OpenVINO's CPU plugin (backends.signal_stack)
                model = ov.Core().read_model(str(fp32 / "model.onnx"))
                quantized = nncf.quantize(model, nncf.Dataset(_Items(tiles)), **kwargs)
                ov.save_model(quantized, str(tmp / "model.xml"), compress_to_fp16=False)
        finally:
            log.setLevel(level)
        size = sum((tmp / f).stat().st_size for f in ("model.xml", "model.bin"))
        record = {
            **want,
            "source_artifact": str(fp32),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "made_by": "nncf.quantize(ov_model, nncf.Dataset(calibration tiles)) at NNCF's defaults, then "
            "ov.save_model(compress_to_fp16=False)",
            "model_bytes": size,
        }
        write_json(
            tmp / "manifest.json",
            {
                **manifest,
                "created": record["created"],
                "precision": PRECISION,
                "format": IR_FORMAT,
                "calibration": {**want["calibration"], "method": "nncf"},
                "fp16_fallback_layers": [],
                "layer_sensitivity": None,
                "runtime": {
                    "backend": "openvino",
                    "inference_precision": "f32",
                    "precision_chosen_by": "NNCF's post-training INT8 (bench's peer row)",
                },
                # No export gate: bench measures the row's drift like every other row's.
                "drift": {"backend": "openvino", "within_budget": None, "measured_by": "tdpcr-edge bench"},
                "onnx_sha256": None,
                "model_bytes": size,
                "nncf": {k: record[k] for k in ("nncf", "source_onnx_sha256", "parameters")},
                # Its own files (the IR), not the source artifact's; no golden set of its own.
                "files": file_digests(tmp),
                "golden": None,
            },
        )
        write_json(tmp / RECORD, record)  # last: a folder with nncf.json is complete
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record


class _Items:
    """The calibration tiles as NNCF iterates them: each pass a fresh one, in order, one
    batch-1 input dict at a time (never all held)."""

    def __init__(self, tiles):
        self.tiles = tiles

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self):
        self.tiles.rewind()
        while (item := self.tiles.get_next()) is not None:
            yield item
