"""manifest.json: everything needed to use or audit an artifact without guessing
(DESIGN section 4)."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from ..errors import CheckpointError

SCHEMA_VERSION = 1


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("torch", "onnx", "onnxruntime", "onnxsim", "onnxconverter-common", "onnxruntime-extensions", "tensorrt"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def build_manifest(**fields) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
        "versions": library_versions(),
    }


def read_record(path: Path, missing: str, fix: str) -> dict:
    """A JSON record of an artifact or engine folder, or a CheckpointError naming the file."""
    if not path.exists():
        raise CheckpointError(f"{path}: missing; {missing}")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); {fix}") from exc


def read_manifest(artifact: str | Path) -> dict:
    path = Path(artifact) / "manifest.json"
    manifest = read_record(path, f"{artifact} is not an artifact written by `tdpcr-edge export`", "export the artifact again")
    if manifest.get("schema_version", 0) > SCHEMA_VERSION:
        raise CheckpointError(f"{path}: manifest schema {manifest['schema_version']} is newer than this tdpcr-edge reads; upgrade tdpcr-edge")
    return manifest
