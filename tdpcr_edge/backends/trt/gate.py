"""build-engine's gate: the engine folder is assembled with the artifact's golden set, the engine
runs it there, and the folder is renamed into place only when its drift against FP32 is within
budget (docs/tensorrt.md#verify-on-the-device)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ... import golden
from ...contract import file_digests
from ...drift import over_budget
from ...errors import ConfigError, DriftBudgetError
from ...io_utils import atomic_dir, write_json
from ..targets import list_profiles


def check_golden_tile(artifact: Path, manifest: dict) -> None:
    """The engine is gated on the artifact's golden set, which must be cut at the engine's tile:
    padded up to it, a tile's every output changes (the global context pools the whole tile)."""
    g = manifest.get("golden")
    if not g:
        raise ConfigError(f"{artifact}: no golden set to gate the engine on; export it again with this tdpcr-edge")
    if g["tile"] != manifest["tile"]:
        raise ConfigError(
            f"{artifact}: its golden tiles are {g['tile']} px, the engine will run {manifest['tile']} px tiles; export it with "
            f"--target for the device ({', '.join(list_profiles('tensorrt'))}), which cuts them at the engine's tile"
        )


def write_engine_folder(out: Path, artifact: Path, serialized: bytes, record: dict, budget: dict, make_runner) -> dict:
    """The engine folder, assembled in a temporary folder: model.engine, the artifact's golden
    set, engine.json with every file's digest. The engine then runs the golden set there
    (``make_runner(folder)``) and the folder is renamed into place only when its drift against
    FP32 is within ``budget``: over it, DriftBudgetError (exit 3) and nothing is written."""
    with atomic_dir(out) as tmp:
        (tmp / "model.engine").write_bytes(serialized)
        shutil.copytree(artifact / golden.DIR, tmp / golden.DIR)
        record["files"] = file_digests(tmp)
        write_json(tmp / "engine.json", record)
        record["drift"] = gate_engine(tmp, record, budget, make_runner)
        write_json(tmp / "engine.json", record)
    return record


def gate_engine(folder: Path, record: dict, budget: dict, make_runner) -> dict:
    """The engine's drift on the golden set against the stored FP32 outputs, judged on ``budget``."""
    g = golden.read(folder)
    with make_runner(folder) as runner:
        drift = golden.measure(g, runner, record["model"]["num_classes"])
    broken = over_budget(drift, budget)
    if broken:
        raise DriftBudgetError(
            f"{record.get('precision')} engine's drift on the golden set over budget: {'; '.join(broken)}; nothing written. "
            "Build it from an fp16 or mixed artifact, or loosen --drift-budget"
        )
    return {**{k: drift[k] for k in golden.DRIFT_KEYS}, "tiles": len(g.tiles), "budget": budget, "within_budget": True}
