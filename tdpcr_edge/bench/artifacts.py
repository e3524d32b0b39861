"""The artifacts and engines a bench times: one artifact per precision under --artifacts, reused when it
matches the checkpoint, precision, tile and target, else exported; TensorRT engines built beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import precisions
from ..contract import file_sha256
from ..errors import ConfigError
from ..export import nncf_peer
from .matrix import Combo
from .options import BenchOptions


def _artifact_matches(path: Path, precision: str, sha: str, tile: int, target: str | None) -> bool:
    from ..contract import read_manifest

    if not (path / "manifest.json").exists():
        return False
    m = read_manifest(path)
    return (
        m["precision"] == precision
        and m["checkpoint"]["sha256"] == sha
        and m["tile"] == tile
        and not m["plugin"]["enabled"]
        and m.get("target") == target
    )


def artifact_key(combo: Combo) -> str:
    """The artifact folder a row runs, named as ``ensure_artifacts`` keys it: its precision's,
    or NNCF's INT8 IR for the ``openvino int8 nncf`` peer row."""
    return nncf_peer.FOLDER if nncf_peer.is_row(combo) else combo.precision


def artifact_keys(combos: list[Combo]) -> list[str]:
    """The artifact folders these rows run (``artifact_key``), in precision order, NNCF's last."""
    keys = {artifact_key(k) for k in combos if k.needs_artifact}
    return sorted(keys - {nncf_peer.FOLDER}, key=precisions.names().index) + sorted(keys & {nncf_peer.FOLDER})


def ensure_artifacts(opts: BenchOptions, precisions: list[str], on_stage: Callable[[str], None]) -> tuple[dict[str, Path], list[str]]:
    """An artifact folder per precision, exported when missing; returns them and the names
    of those exported now. ``nncf_peer.FOLDER`` among them is NNCF's INT8 IR, made from the
    fp32 artifact (exported too if need be) unless a matching one is there."""
    from ..export import ExportOptions, run_export
    from ..train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(opts.checkpoint)
    sha = file_sha256(ckpt.path)
    root = Path(opts.artifacts or Path(opts.report) / "artifacts")
    paths, exported = {}, []
    nncf = nncf_peer.FOLDER in precisions
    precisions = [p for p in precisions if p != nncf_peer.FOLDER]
    if nncf and nncf_peer.SOURCE_PRECISION not in precisions:
        precisions.insert(0, nncf_peer.SOURCE_PRECISION)
    for precision in precisions:
        path = root / precision
        if not _artifact_matches(path, precision, sha, opts.tile, opts.target):
            on_stage(f"export {precision}")
            if path.exists():
                raise ConfigError(
                    f"{path}: holds an artifact of another checkpoint, precision or tile, or of another target; remove it or pass another "
                    "--artifacts folder"
                )
            # Over-budget precisions are kept: the report is where their cost is shown.
            run_export(
                ExportOptions(
                    out=path,
                    precision=precision,
                    checkpoint=opts.checkpoint,
                    tile=opts.tile,
                    calib=opts.calib,
                    calib_tiles=opts.calib_tiles,
                    eval_data=opts.data,  # gated on the data the bench holds out, as every row is
                    eval_tiles=opts.eval_tiles,
                    allow_drift=True,
                    target=opts.target,
                    drift_budget=opts.drift_budget,
                ),
                on_stage=lambda stage, p=precision: on_stage(f"export {p}: {stage}"),
            )
            exported.append(precision)
        paths[precision] = path
    if nncf:
        paths[nncf_peer.FOLDER] = root / nncf_peer.FOLDER
        if nncf_peer.ensure(
            paths[nncf_peer.SOURCE_PRECISION], paths[nncf_peer.FOLDER], calib=opts.calib, calib_tiles=opts.calib_tiles, on_stage=on_stage
        ):
            exported.append(nncf_peer.FOLDER)
    return paths, exported


def ensure_engine(artifact: Path, engines: Path, precision: str) -> Path:
    from ..backends.trt.engine import build_engine

    out = engines / precision
    if not (out / "engine.json").exists():
        build_engine(artifact, out)
    return out
