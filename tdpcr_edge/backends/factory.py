"""``load_runner``: a runner for whatever a user points at (a checkpoint, an artifact folder,
an engine folder), on the backend the registry (``backends.registry``) says runs it. Backends
are imported only when asked for, so ``import tdpcr_edge`` pulls in neither ONNX Runtime,
OpenVINO nor TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

from .. import precisions
from ..contract import check_files, is_artifact, is_engine, read_engine_record, read_manifest
from ..errors import ConfigError, DataError, IntegrityError
from . import registry as backends
from .runner import Runner


def artifact_backend(manifest: dict) -> str:
    """The backend an artifact's drift was gated on, which ``--backend auto`` runs it with:
    OpenVINO for a CPU target's export, ONNX Runtime otherwise."""
    return (manifest.get("runtime") or {}).get("backend", "ort")


def from_report(report_path: str | Path) -> tuple[Path, str, dict]:
    """(model path, backend, row) of a ``tdpcr-edge bench`` report's fastest row within the
    drift budget that a scene stream runs as measured: a CPU row or a TensorRT engine."""
    from ..records import check
    from ..records.artifact import ReportRecord
    from ..report.rows import fastest_within_budget

    report_path = Path(report_path)
    fix = "pass a report.json written by `tdpcr-edge bench`, or a checkpoint, artifact or engine folder"
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{report_path}: not a report.json written by `tdpcr-edge bench` ({exc}); {fix}") from None
    rows = check(report, ReportRecord, report_path, fix, DataError)["rows"]
    models = sorted({str(r["model"]) for r in rows if r.get("model")})
    if len(models) > 1:
        raise ConfigError(
            f"{report_path}: compares {len(models)} models ({', '.join(models)}); a stream runs one: pass the artifact folder of the row "
            "you choose with --model"
        )
    eligible = {**report, "rows": [r for r in rows if r.get("device", "cpu") == "cpu" or r.get("backend") == "trt"]}
    best = fastest_within_budget(eligible)
    if best is None or not best.get("model_path"):
        raise ConfigError(
            f"{report_path}: no row is within the drift budget (or the report predates model paths); pass an artifact folder with --model"
        )
    model = Path(best["model_path"])
    if not model.exists():
        raise ConfigError(
            f"{report_path}: its fastest row within budget runs {model}, which no longer exists; run `tdpcr-edge bench` again"
        )
    return model, best["backend"], best


def resolve_backend(path: str | Path | None, backend: str = "auto") -> str:
    """``auto``: the engine backend for an engine folder, the artifact's own backend for an
    artifact folder, the checkpoint backend (torch) for a checkpoint file or the shipped one."""
    if backend != "auto":
        return backends.get(backend).name
    path = Path(path) if path is not None else None
    if is_engine(path):
        return backends.first_reading("engine").name
    if is_artifact(path):
        gated = artifact_backend(read_manifest(path))
        if backends.get(gated).missing() is None:
            return gated
        # The gate's backend is not installed here: another that runs artifacts and is.
        return next((b for b in backends.names() if backends.get(b).reads == "artifact" and backends.get(b).missing() is None), gated)
    return backends.first_reading("checkpoint").name


def load_runner(
    path: str | Path | None = None,
    backend: str = "torch",
    *,
    variant: str = "",
    device: str | None = None,
    precision: str | None = None,
    public_key: str | Path | None = None,
    checked: bool = False,
    **kwargs,
) -> Runner:
    """A runner for a checkpoint file, an artifact folder written by ``tdpcr-edge export`` (a
    checkpoint backend loads its checkpoint.pt) or an engine folder written by
    ``tdpcr-edge build-engine``. ``None`` is the shipped checkpoint; ``backend="auto"`` picks
    as ``resolve_backend`` says. ``variant``, ``device`` and ``precision`` select a bench row's
    way of running (torch.compile, CUDA, FP16 on torch; OpenVINO's defaults).

    An artifact's or engine's files are checked against the digests its record holds before
    anything is loaded, and with ``public_key`` its signature too: a changed file is one
    ``IntegrityError`` naming it (``checked``: the caller has just checked them)."""
    path = Path(path) if path is not None else None
    if not checked:
        check_folder(path, public_key)
    row = backends.get(resolve_backend(path, backend))
    manifest = None
    if row.reads == "engine":
        if not is_engine(path):
            raise ConfigError(
                f"{path}: the {row.name} backend runs an engine folder (engine.json + model.engine); build one with `tdpcr-edge "
                "build-engine ART --out DIR`"
            )
    elif path is not None and path.is_dir() and not is_artifact(path):
        raise ConfigError(f"{path}: no manifest.json; pass a checkpoint file or a folder written by `tdpcr-edge export`")
    elif row.reads == "checkpoint":
        path = path / "checkpoint.pt" if is_artifact(path) else path
    else:
        if not is_artifact(path):
            raise ConfigError(f"{path}: the {row.name} backend runs an exported artifact folder; run `tdpcr-edge export` first")
        manifest = read_manifest(path)
        if row.user_facing:  # the replay backend computes nothing, so any precision replays
            precisions.get(manifest["precision"]).refuse_backend(row.name, str(path))
    return row.runner_module().load(path, manifest, variant=variant, device=device, precision=precision, **kwargs)


def check_folder(path: Path | None, public_key: str | Path | None = None) -> None:
    """The signature (with ``public_key``), then every digest of an artifact or engine folder."""
    if path is None or not path.is_dir() or not (is_artifact(path) or is_engine(path)):
        if public_key is not None:
            raise IntegrityError(f"{path or 'the shipped checkpoint'}: --public-key checks a signed artifact or engine folder; pass one")
        return
    if public_key is not None:
        from ..signing import verify_signature

        verify_signature(path, Path(public_key))
    if is_artifact(path):
        check_files(path, read_manifest(path))
    else:
        check_files(path, read_engine_record(path), "engine.json")


def graph_runner(proto, config: dict, backend: str, precision: str) -> Runner:
    """A runner for an in-memory graph on a backend that gates drift, computing as the
    artifact will run (export measures candidate graphs this way before writing one)."""
    row = backends.get(backend)
    if not row.gates_drift:
        raise ConfigError(f"--backend {backend}: the drift is measured on {' or '.join(backends.drift_backends())}")
    return row.runner_module().load_graph(proto, config, precision)


def model_metadata(runner: Runner, backend: str, path: Path | None) -> dict:
    """What a run records of the model a runner holds, read where the backend's row says its
    metadata lives: normalisation, classes, colours, config, checkpoint digest, the backend
    and the source (path or the shipped checkpoint)."""
    row = backends.get(backend)
    if row.metadata == "checkpoint":
        from ..contract import file_sha256

        ck = runner.checkpoint
        meta = {
            "normalization": ck.normalization.to_dict(),
            "classes": ck.classes,
            "colors": [list(c) for c in ck.colors],
            "model": ck.config.to_dict(),
            "checkpoint_sha256": file_sha256(ck.path),
        }
    else:
        rec = json.loads((path / row.metadata).read_text())
        meta = {k: rec[k] for k in ("normalization", "classes", "colors", "model")}
        meta["checkpoint_sha256"] = (rec.get("checkpoint") or {}).get("sha256")
    from ..model.registry import outputs_of

    meta["outputs"] = list(outputs_of(meta["model"]))  # what the stream writes and scores
    meta["backend"] = backend
    meta["source"] = str(path) if path else "shipped checkpoint"
    return meta
