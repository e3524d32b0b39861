"""One archive's job model, which both executors (this process, ``archive``; Ray actors,
``archive_ray``) run: the options every scene shares, each scene's job key (inputs, model and
stream options, so a rerun skips what is complete), and the processing of one scene into its
folder and its summary row."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, TdpcrError
from ..io_utils import atomic_path, file_stamp, write_json
from ..records import check
from ..records.run import RunRecord
from ..stream import StreamOptions, run_stream

STATE = ".archive"  # attempts per scene; on the shared file system every worker sees


@dataclass
class ArchiveOptions:
    out: Path
    stream: dict = field(default_factory=dict)  # StreamOptions fields every scene shares (model, backend, tile, ...)
    ray: str | None = None  # None: this process; "local": a private local Ray instance; "auto": this machine's cluster; or an address
    workers: int | None = None  # Ray actors (default: one per CPU share that fits); in-process: the stream's inference workers
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 3  # runs of a scene after its worker died


def model_identity(stream: dict) -> str:
    """The digest of the model every scene runs: its checkpoint file's, or its artifact's or
    engine's record (computed once per archive, not once per scene)."""
    from ..contract import file_sha256
    from ..train.checkpoint import default_checkpoint_path

    model = stream.get("model")
    if model is None:
        return file_sha256(default_checkpoint_path())
    if Path(model).is_file():
        return file_sha256(model)
    marker = next((Path(model) / f for f in ("engine.json", "manifest.json") if (Path(model) / f).exists()), None)
    return file_sha256(marker) if marker else str(model)


def job_key(job: dict, stream: dict, model_id: str) -> str:
    """What makes a scene's outputs what they are: its inputs (path, size, mtime), the model
    (``model_identity``) and the stream options. Execution settings (Ray or not, workers) are
    left out: they do not change the result."""
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(stream.items()) if k not in ("model", "workers", "resume")}
    payload = {k: None if job.get(k) is None else file_stamp(job[k]) for k in ("optical", "sar", "reference", "labels", "cloud")}
    return hashlib.sha256(json.dumps([payload, model_id, options], sort_keys=True).encode()).hexdigest()


def scene_options(job: dict, opts: ArchiveOptions) -> StreamOptions:
    shared = {k: v for k, v in opts.stream.items() if k != "workers"}
    return StreamOptions(
        optical=Path(job["optical"]),
        sar=Path(job["sar"]),
        out=Path(opts.out) / job["name"],
        reference=job.get("reference"),
        labels=job.get("labels"),
        cloud=job.get("cloud"),
        resume="auto",
        **shared,
    )


def completed(job: dict, opts: ArchiveOptions, key: str) -> dict | None:
    """The run record of a scene finished by an earlier run of the same model and options
    with every output in place; None when the scene must be streamed (again)."""
    run = Path(opts.out) / job["name"] / "run.json"
    try:
        record = check(json.loads(run.read_text()), RunRecord, run, "", DataError)
    except (OSError, ValueError, DataError):
        return None  # absent, damaged, or of another schema version: the scene is streamed again
    done = record.get("job_key") == key and all((run.parent / f).exists() for f in record["outputs"])
    return record if done else None


def _count_attempt(out: Path, name: str) -> int:
    """This run's attempt number for a scene (1 on the first), kept beside the outputs so a
    worker on another node sees the same count."""
    path = out / STATE / f"{name}.attempts"
    n = (int(path.read_text() or 0) if path.exists() else 0) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(str(n))
    return n


def process_scene(job: dict, opts: ArchiveOptions, key: str, opened, worker: str) -> dict:
    """Stream one scene with an open runner; the summary row. Bad input is the row's error,
    never an exception: one scene's fault does not stop the others."""
    attempt = _count_attempt(Path(opts.out), job["name"])
    row = {"name": job["name"], "worker": worker, "attempts": attempt}
    try:
        record = run_stream(scene_options(job, opts), opened=opened)
    except TdpcrError as exc:
        return {**row, "status": "failed", "error": str(exc)}
    record["job_key"] = key
    write_json(Path(opts.out) / job["name"] / "run.json", record)
    return {**row, "status": "done", **_row_figures(record)}


def _row_figures(record: dict) -> dict:
    acc = record.get("accuracy") or {}
    return {
        "tiles": record["tiles"]["processed"],
        "tiles_per_s": record["tiles_per_s"],
        "wall_s": record["wall_s"],
        "psnr": (acc.get("model") or {}).get("psnr"),
        "miou": (acc.get("model") or {}).get("miou"),
        "sums": acc.get("sums"),
        "warnings": record.get("warnings", []),
    }


def default_batch(ray: str | None, cpus_per_worker: float = 1.0) -> int:
    """Tiles per inference call when ``--batch`` is left out. In this process a batch of 4 is
    split between two single-threaded workers on two cores: calls of 2 tiles per core. A Ray
    worker streams alone on its CPU share, and calls of 4 tiles on one core run slower per
    tile than calls of 2 (docs/streaming.md)."""
    return max(1, round(2 * cpus_per_worker)) if ray else 4


def archive_options(
    out: Path, stream: dict, ray: str | None = None, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, max_retries: int = 3
) -> ArchiveOptions:
    """The options of ``infer --pairs``. With Ray, ``stream["workers"]`` counts Ray workers and
    each streams its scene with the default inference workers for its CPU share; in this
    process it is the stream's own inference workers."""
    stream = dict(stream)
    if stream.get("batch") is None:
        stream["batch"] = default_batch(ray, cpus_per_worker)
    workers = None
    if ray:
        workers, stream["workers"] = stream.get("workers"), None
    return ArchiveOptions(
        out=out,
        stream=stream,
        ray=ray,
        workers=workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=gpus_per_worker,
        max_retries=max_retries,
    )
