"""``load_runner``: the one place that knows which backend runs which kind of model folder.

Backends are imported here only when asked for, so ``import tdpcr_edge`` pulls in neither
ONNX Runtime, OpenVINO nor TensorRT."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from .runner import BACKENDS, Runner


def artifact_backend(manifest: dict) -> str:
    """The backend an artifact's drift was gated on, which ``--backend auto`` runs it with:
    OpenVINO for a CPU target's export, ONNX Runtime otherwise."""
    return (manifest.get("runtime") or {}).get("backend", "ort")


def inference_precision(manifest: dict) -> str:
    """What OpenVINO computes an artifact in: BF16 for a bf16 artifact (the FP32 graph run in
    BF16), else the graph's own types (f32 between its casts and Q/DQ nodes)."""
    return "bf16" if manifest["precision"] == "bf16" else "f32"


def from_report(report_path: str | Path) -> tuple[Path, str, dict]:
    """(model path, backend, row) of a ``tdpcr-edge bench`` report's fastest row within the
    drift budget that a scene stream runs as measured: a CPU row or a TensorRT engine."""
    from ..errors import DataError
    from ..report.bench_report import fastest_within_budget

    report_path = Path(report_path)
    try:
        report = json.loads(report_path.read_text())
        rows = report["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{report_path}: not a report.json written by `tdpcr-edge bench` ({exc}); pass a checkpoint, artifact or engine folder") from None
    eligible = {**report, "rows": [r for r in rows if r.get("device", "cpu") == "cpu" or r.get("backend") == "trt"]}
    best = fastest_within_budget(eligible)
    if best is None or not best.get("model_path"):
        raise ConfigError(f"{report_path}: no row is within the drift budget (or the report predates model paths); pass an artifact folder with --model")
    model = Path(best["model_path"])
    if not model.exists():
        raise ConfigError(f"{report_path}: its fastest row within budget runs {model}, which no longer exists; run `tdpcr-edge bench` again")
    return model, best["backend"], best


def resolve_backend(path: str | Path | None, backend: str = "auto") -> str:
    """``auto``: trt for an engine folder, the artifact's own backend for an artifact folder,
    torch for a checkpoint file (or the shipped checkpoint)."""
    if backend != "auto":
        return backend
    path = Path(path) if path is not None else None
    if path is not None and (path / "engine.json").exists():
        return "trt"
    if path is not None and (path / "manifest.json").exists():
        return artifact_backend(json.loads((path / "manifest.json").read_text()))
    return "torch"


def load_runner(path: str | Path | None = None, backend: str = "torch", **kwargs) -> Runner:
    """A runner for a checkpoint file (torch), an artifact folder written by
    ``tdpcr-edge export`` (torch loads its checkpoint, ort and openvino its model.onnx), or
    an engine folder written by ``tdpcr-edge build-engine`` (trt). ``None`` is the shipped
    checkpoint; ``backend="auto"`` picks as ``resolve_backend`` says."""
    backend = resolve_backend(path, backend)
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose one of auto, {', '.join(BACKENDS)}")
    path = Path(path) if path is not None else None
    if backend == "trt":
        if path is None or not (path / "engine.json").exists():
            raise ConfigError(f"{path}: the trt backend runs an engine folder (engine.json + model.engine); build one with `tdpcr-edge build-engine ART --out DIR`")
        from .trt_runner import TrtRunner

        return TrtRunner(path, **kwargs)
    artifact = path is not None and path.is_dir()
    if artifact and not (path / "manifest.json").exists():
        raise ConfigError(f"{path}: no manifest.json; pass a checkpoint file or a folder written by `tdpcr-edge export`")
    if backend == "torch":
        from .torch_runner import TorchRunner

        return TorchRunner(path / "checkpoint.pt" if artifact else path, **kwargs)
    if not artifact:
        raise ConfigError(f"{path}: the {backend} backend runs an exported artifact folder; run `tdpcr-edge export` first")
    from ..export.manifest import read_manifest

    manifest = read_manifest(path)
    if backend == "ort":
        if manifest["precision"] == "bf16":
            raise ConfigError(f"{path}: a bf16 artifact is the FP32 graph run in BF16 by OpenVINO, as its drift was measured; pass --backend openvino")
        from .ort_runner import OrtRunner

        return OrtRunner(path / "model.onnx", manifest["model"], **kwargs)
    if backend == "openvino":
        from .openvino_runner import OpenVinoRunner

        kwargs.setdefault("inference_precision", inference_precision(manifest))
        return OpenVinoRunner(path / "model.onnx", manifest["model"], **kwargs)
    raise AssertionError(backend)
