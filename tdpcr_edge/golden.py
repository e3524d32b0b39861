"""The golden set: a few held-out tiles every artifact and engine carries, so that what reached
the device can be checked on the device (``tdpcr-edge verify``, build-engine's gate).

    golden/golden.npz     the tiles as the runtime receives them (optical, sar: normalised, float32),
                          the torch FP32 outputs on them (reconstruction, segmentation, reliance) and the
                          ground truth (clear, labels, cloud, valid); compressed
    golden/inputs.json    the same inputs in Polygraphy's JSON (one iteration per tile, batch 1), for
                          ``polygraphy run --load-inputs``
    golden/outputs.json   the same FP32 outputs as Polygraphy's RunResults, for ``--load-outputs``

Polygraphy's JSON is written and read here with numpy alone (an array is the base64 of its
``np.save`` bytes), so neither export nor the device needs Polygraphy installed. The tiles are
cut at the size the model will run them: an engine is built for one tile size, and padding a
smaller tile up to it changes every output (the global channel context pools the whole tile).
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .contract import OUTPUTS, file_sha256
from .data.scenes import SceneArrays
from .errors import IntegrityError

DIR = "golden"
NPZ = "golden.npz"
INPUTS_JSON = "inputs.json"
OUTPUTS_JSON = "outputs.json"
FILES = (NPZ, INPUTS_JSON, OUTPUTS_JSON)
RUNNER_NAME = "tdpcr-torch-fp32"  # what outputs.json calls the reference run
TRUTH = ("clear", "labels", "cloud", "valid")
# CPU targets (and no target) run any tile size: small tiles keep the set small. A TensorRT
# target's engine runs exactly its tile, so its golden tiles are cut at that size, fewer of them.
SMALL_TILE, SMALL_COUNT = 64, 4
ENGINE_COUNT = 1
# What the records keep of a golden drift (verify prints and compares these).
DRIFT_KEYS = ("psnr_delta", "ssim_delta", "sam_delta", "miou_delta", "max_abs_error", "mean_abs_error", "class_agreement")


def shape_for(tile: int, fixed_tile: bool) -> tuple[int, int]:
    """(tiles, size) of an artifact's golden set: ``fixed_tile`` when a TensorRT engine will be
    built at ``tile``."""
    return (ENGINE_COUNT, tile) if fixed_tile else (SMALL_COUNT, min(SMALL_TILE, tile))


@dataclass
class Golden:
    tiles: list[SceneArrays]
    outputs: list[dict[str, np.ndarray]]  # the FP32 reference, per tile, batch 1

    def reference(self):
        """The stored FP32 outputs as a ``scoring.RunModel``: called with the golden tiles in
        order, it returns each tile's outputs."""
        it = iter(self.outputs)
        return lambda optical, sar: next(it)


def polygraphy_array(a: np.ndarray) -> dict:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return {"array": base64.b64encode(buf.getvalue()).decode(), "polygraphy_class": "ndarray"}


def from_polygraphy_array(d: dict) -> np.ndarray:
    return np.load(io.BytesIO(base64.b64decode(d["array"].encode(), validate=True)), allow_pickle=False)


def write(folder: Path, tiles: list[SceneArrays], outputs: list[dict[str, np.ndarray]]) -> dict:
    """Write the golden set into ``folder/golden``; return its record for the manifest."""
    out = folder / DIR
    out.mkdir(parents=True, exist_ok=True)
    arrays = {
        "optical": np.stack([t.optical for t in tiles]).astype(np.float32),
        "sar": np.stack([t.sar for t in tiles]).astype(np.float32),
        "names": np.array([t.name for t in tiles]),
    }
    produced = [k for k in OUTPUTS if k in outputs[0]]
    for name in produced:
        arrays[name] = np.concatenate([o[name] for o in outputs]).astype(np.float32)
    for name in TRUTH:
        values = [getattr(t, name) for t in tiles]
        if all(v is not None for v in values):
            # class ids (255 = ignore) fit a byte; the runtime reads them back as int64
            arrays[name] = np.stack(values).astype(np.uint8 if name == "labels" else values[0].dtype)
    np.savez_compressed(out / NPZ, **arrays)
    feeds = [{"optical": polygraphy_array(t.optical[None]), "sar": polygraphy_array(t.sar[None])} for t in tiles]
    (out / INPUTS_JSON).write_text(json.dumps(feeds))
    iterations = [
        {
            "outputs": {k: {"values": polygraphy_array(o[k]), "polygraphy_class": "LazyArray"} for k in produced},
            "runtime": None,
            "runner_name": RUNNER_NAME,
            "polygraphy_class": "IterationResult",
        }
        for o in outputs
    ]
    (out / OUTPUTS_JSON).write_text(json.dumps({"lst": [[RUNNER_NAME, iterations]], "polygraphy_class": "RunResults"}))
    return {
        "dir": DIR,
        "tiles": len(tiles),
        "tile": int(tiles[0].optical.shape[-1]),
        "names": [t.name for t in tiles],
        "bytes": {name: (out / name).stat().st_size for name in FILES},
    }


def read(folder: Path) -> Golden:
    """The golden set of an artifact or engine folder (digests are checked before, by the caller)."""
    path = Path(folder) / DIR / NPZ
    if not path.is_file():
        raise IntegrityError(f"{path}: missing; this artifact has no golden set: export it again with this tdpcr-edge")
    try:
        with np.load(path, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        a["names"]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise IntegrityError(f"{path}: unreadable ({type(exc).__name__}: {exc}); export the artifact again") from None
    tiles, outputs = [], []
    for i, name in enumerate(a["names"]):
        truth = {k: a[k][i] if k in a else None for k in TRUTH}
        if truth["labels"] is not None:
            truth["labels"] = truth["labels"].astype(np.int64)
        valid = truth.pop("valid")
        if valid is None:
            valid = np.ones(a["optical"].shape[-2:], bool)
        tiles.append(SceneArrays(str(name), a["optical"][i], a["sar"][i], valid, **truth))
        outputs.append({k: a[k][i : i + 1] for k in OUTPUTS if k in a})
    return Golden(tiles, outputs)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every golden file, by its path inside the artifact."""
    return {f"{DIR}/{name}": file_sha256(Path(folder) / DIR / name) for name in FILES}


def measure(g: Golden, run, num_classes: int) -> dict:
    """The drift of ``run`` (a ``scoring.RunModel``: a runner of the artifact or engine) on the
    golden tiles against the stored FP32 outputs, scored against the ground truth."""
    from .drift import measure_drift

    drift, _ = measure_drift(g.reference(), run, g.tiles, num_classes)
    return drift
