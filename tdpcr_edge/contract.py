"""The artifact contract: what ``export`` and ``build-engine`` write and what the runtime
reads, in one place that both sides import and that imports neither.

    ART/manifest.json   the fields docs/architecture.md#the-artifact-contract lists (``build_manifest`` / ``read_manifest``)
    ENGINE/engine.json  TensorRT version, GPU, plugin digest, build options (``read_engine_record``)

It also names what a graph must be called by: model inputs and outputs, the TDP_PGF plugin
node's domain, type, version and tensors, and the digests that tie an artifact to its
checkpoint. Only the standard library is imported: a runtime install reads these records
without torch or onnx.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

from .errors import CheckpointError, IntegrityError

SCHEMA_VERSION = 1  # manifest.json
ENGINE_SCHEMA = 1  # engine.json

# Model boundary (docs/architecture.md#the-artifact-contract): every output a backend may return,
# in this order; a network returns reconstruction and those of the others its architecture has
# (model.registry.outputs_of; the same tuple as model.registry.OUTPUTS, kept here for the leaves).
OUTPUTS = ("reconstruction", "segmentation", "reliance", "uncertainty")

# The TDP_PGF plugin node: a plain ONNX node that TensorRT's parser maps to our creator.
PLUGIN_DOMAIN = "tdpcr"
PLUGIN_OP = "TDP_PGF"
PLUGIN_VERSION = "1"
PLUGIN_INPUTS = ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias")
PLUGIN_OUTPUTS = ("fused", "reliance")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# What a runtime loads from a folder: each one present must be listed with its digest.
LOADED = ("model.onnx", "model.xml", "model.bin", "model.engine", "checkpoint.pt")
# Files a folder's own records never list: the records themselves, and a signature made after them.
UNLISTED = ("manifest.json", "engine.json", "signature.json")


def file_digests(folder: str | Path) -> dict[str, str]:
    """sha256 of every file in an artifact or engine folder, by its path inside it (records and
    signature left out: they are what holds the digests)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in UNLISTED
    }


def check_files(folder: str | Path, record: dict, record_name: str = "manifest.json") -> None:
    """Every file the record lists is there with the digest it records; else one IntegrityError
    naming the file. A manifest from before ``files`` was written has the graph's digest alone;
    an engine record without digests is refused (TensorRT would deserialise whatever is there)."""
    folder = Path(folder)
    files = record.get("files")
    if not files and record_name == "engine.json":
        raise IntegrityError(f"{folder / record_name}: records no digest of model.engine; rebuild it with `tdpcr-edge build-engine`")
    if not files:
        files = {"model.onnx": record["onnx_sha256"]} if record.get("onnx_sha256") else {}
    for name in LOADED:
        if (folder / name).is_file() and name not in files:
            raise IntegrityError(
                f"{folder / name}: {record_name} records no digest of it; export (or build) the folder again with this tdpcr-edge"
            )
    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            raise IntegrityError(f"{path}: missing, though {record_name} lists it; copy the whole folder again, or export it again")
        if file_sha256(path) != digest:
            raise IntegrityError(
                f"{path}: its sha256 is not the one {record_name} records: the file changed after it was written; "
                "copy it again from the source, or export it again"
            )


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in ("torch", "onnx", "onnxruntime", "onnxsim", "onnxconverter-common", "onnxruntime-extensions", "openvino", "tensorrt"):
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
    if isinstance(manifest, dict) and isinstance(manifest.get("schema_version"), int) and manifest["schema_version"] > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: manifest schema {manifest['schema_version']} is newer than the {SCHEMA_VERSION} this tdpcr-edge reads; upgrade it"
        )
    from .records import check
    from .records.artifact import ManifestRecord

    return check(manifest, ManifestRecord, path, "export the artifact again with this tdpcr-edge")


def read_engine_record(engine_dir: str | Path) -> dict:
    path = Path(engine_dir) / "engine.json"
    record = read_record(path, f"{engine_dir} is not a folder written by `tdpcr-edge build-engine`", "rebuild the engine")
    if isinstance(record, dict) and isinstance(record.get("schema_version"), int) and record["schema_version"] > ENGINE_SCHEMA:
        raise CheckpointError(f"{path}: engine schema {record['schema_version']} is newer than this tdpcr-edge reads ({ENGINE_SCHEMA})")
    from .records import check
    from .records.artifact import EngineRecord

    check(record, EngineRecord, path, "rebuild the engine with `tdpcr-edge build-engine`")
    if not (Path(engine_dir) / "model.engine").is_file():
        raise CheckpointError(f"{Path(engine_dir) / 'model.engine'}: missing; rebuild the engine")
    return record


def is_artifact(path: Path | None) -> bool:
    return path is not None and (path / "manifest.json").exists()


def is_engine(path: Path | None) -> bool:
    return path is not None and (path / "engine.json").exists()


# The shipped checkpoint: where it is, how to recognise it, and what to say when it meets real
# data (read by the stream and by evaluation; no torch needed to tell).
SHIPPED_ON_REAL_DATA = (
    "the shipped checkpoint learnt the synthetic world only: on real scenes its output is not to be trusted "
    "(on a Landsat scene it returned 0-880 DN for inputs of 580-1,400 DN, clear sky included); fine-tune it on your own data: "
    "tdpcr-edge train --init shipped --data sen12mscr:ROOT (docs/training.md, Fine-tuning)"
)


def is_shipped(sha256: str | None) -> bool:
    """Whether a checkpoint (by its sha256) is the one shipped in the package."""
    return sha256 is not None and sha256 == _shipped_sha256()


@lru_cache(maxsize=1)
def _shipped_sha256() -> str:
    return file_sha256(default_checkpoint_path())


def shipped_artifact_path() -> Path:
    """The shipped checkpoint exported as an FP32 artifact (model.onnx, manifest, drift; no
    checkpoint.pt): what ``infer`` runs without --model where torch is not installed."""
    return Path(str(resources.files("tdpcr_edge") / "weights" / "tiny-fp32"))


def default_checkpoint_path() -> Path:
    """The trained tiny model shipped inside the package."""
    return Path(str(resources.files("tdpcr_edge") / "weights" / "tiny.pt"))
