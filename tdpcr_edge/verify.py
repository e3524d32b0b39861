"""`tdpcr-edge verify`: the check an operator runs before switching to a model that reached the
device, and the boot-time self-test of an onboard payload. In order, each step refusing before
the next runs:

1. the signature, when a public key is given (``signing``);
2. every file's digest against the record (manifest.json, or engine.json for an engine);
3. the golden set run on the backend, scored against the stored FP32 outputs and the ground
   truth; its drift printed beside the drift export measured on the same tiles, and judged
   against the budget (exit 3 when over, as export's gate).

No torch: the reference is the golden set's stored outputs, the metrics are numpy's."""

from __future__ import annotations

import time
from pathlib import Path

from . import golden
from .contract import is_artifact, is_engine, read_engine_record, read_manifest
from .drift import miou_text, over_budget, parse_budget
from .errors import ConfigError, DriftBudgetError, IntegrityError
from .io_utils import write_json

SUMMARY_KEYS = ("psnr_delta", "ssim_delta", "sam_delta", "miou_delta", "max_abs_error", "class_agreement")


def read_record(path: Path) -> tuple[str, dict]:
    if is_artifact(path):
        return "artifact", read_manifest(path)
    if is_engine(path):
        return "engine", read_engine_record(path)
    raise ConfigError(
        f"{path}: neither an artifact (manifest.json) nor an engine folder (engine.json); pass a folder written by export or build-engine"
    )


def verify(
    path: str | Path,
    backend: str | None = None,
    drift_budget: str | None = None,
    public_key: str | Path | None = None,
    json_out: str | Path | None = None,
    make_runner=None,
) -> dict:
    """Verify an artifact or engine folder; return the result (written to ``json_out`` too).
    Raises IntegrityError (exit 2) for a damaged, missing or unsigned file and DriftBudgetError
    (exit 3) when the golden drift is over budget; the JSON is written in both cases it can.
    ``make_runner(folder)`` replaces the backend's runner (a seam for tests of engine folders
    on machines without TensorRT)."""
    from .backends.factory import check_folder, load_runner

    path = Path(path)
    if not (is_artifact(path) or is_engine(path)):
        read_record(path)  # the one-line refusal
    start = time.perf_counter()
    check_folder(path, public_key)  # the signature, then every digest, before any record is used
    checked_s = time.perf_counter() - start
    kind, record = read_record(path)
    if not record.get("golden"):
        why = "NNCF's peer IR, made by bench, " if record.get("format") == "openvino-ir" else ""
        raise IntegrityError(f"{path}: {why}carries no golden set to verify on; export it again with this tdpcr-edge")
    backend = backend or ("trt" if kind == "engine" else (record.get("runtime") or {}).get("backend", "ort"))
    g = golden.read(path)
    start = time.perf_counter()
    runner = make_runner(path) if make_runner else load_runner(path, backend=backend, checked=True)
    with runner:
        drift = golden.measure(g, runner, record["model"]["num_classes"])
    run_s = time.perf_counter() - start
    budget = parse_budget(drift_budget)
    broken = over_budget(drift, budget)
    held = (record.get("drift") or {}) if kind == "artifact" else {}
    result = {
        "path": str(path),
        "kind": kind,
        "precision": record.get("precision"),
        "backend": backend,
        "signed": public_key is not None,
        "files_checked": len(record.get("files") or {}),
        "golden_tiles": len(g.tiles),
        "golden_tile": int(g.tiles[0].optical.shape[-1]),
        **{k: drift[k] for k in SUMMARY_KEYS},
        "exported": {
            "golden": record["golden"].get("drift"),
            "golden_backend": record["golden"].get("backend"),
            "heldout": {k: held.get(k) for k in ("psnr_delta", "miou_delta", "tiles")},
        },
        # An engine's own drift on the golden set, measured when build-engine gated it.
        "built": record.get("drift") if kind == "engine" else None,
        "budget": budget,
        "within_budget": not broken,
        "seconds": {"digests": checked_s, "golden": run_s},
    }
    if json_out:
        write_json(json_out, result)
    if broken:
        raise DriftBudgetError(
            f"{path}: golden-set drift on {backend} over budget: {'; '.join(broken)}; the model is not the one exported, "
            "or this runtime computes it differently: do not switch to it"
        )
    return result


def summary_line(r: dict) -> str:
    """What verify found, in one line: the golden drift beside export's (and build-engine's) on the same tiles."""
    exp, held, built = r["exported"]["golden"], r["exported"]["heldout"], r["built"]
    said = [f"{r['kind']} {r['precision']} on {r['backend']}:"]
    if r["signed"]:
        said.append("signature ok,")
    said.append(f"{r['files_checked']} digests ok; golden set ({r['golden_tiles']} tiles of {r['golden_tile']} px):")
    said.append(f"dPSNR {r['psnr_delta']:+.3f} dB, dmIoU {miou_text(r['miou_delta'])} against FP32")
    if exp:
        said.append(
            f"(export measured {exp['psnr_delta']:+.3f} dB, {miou_text(exp['miou_delta'])} on them on {r['exported']['golden_backend']}"
        )
        if held.get("tiles"):
            said.append(f"and {held['psnr_delta']:+.3f} dB, {miou_text(held['miou_delta'])} on its {held['tiles']} held-out tiles")
        if built:
            said.append(f"; build-engine {built['psnr_delta']:+.3f} dB, {miou_text(built['miou_delta'])}")
        said[-1] += ");"
    said.append(f"within budget; {r['seconds']['digests'] + r['seconds']['golden']:.2f} s")
    return " ".join(said)
