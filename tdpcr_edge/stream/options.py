"""What a scene stream is asked to do: its options, how many inference workers share the CPU,
which runner runs the model, and the scene lists of ``--pairs``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backends.runner import Runner
from ..data.specs import read_pairs
from ..errors import ConfigError, DataError
from ..probe import cpu_cores


def default_workers() -> int:
    """Two concurrent inference calls wherever there are two cores to split. On the CPU, two
    single-threaded calls outrun one two-threaded call (docs/streaming.md) and leave the
    reader and writer a core to preempt without stalling the other call's OpenMP threads at
    a barrier. GPU backends take one call at a time whatever is asked (Runner.share_cpu)."""
    return 2 if cpu_cores() >= 2 else 1


def worker_slices(n: int, workers: int) -> list[slice]:
    """How a batch of ``n`` tiles is split among the inference workers: consecutive, nearly
    equal parts, so the scene's last batch does not leave all but one core idle."""
    size = -(-n // workers)
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@dataclass
class StreamOptions:
    optical: Path
    sar: Path
    out: Path
    model: str | None = None
    backend: str = "auto"
    tile: int = 256
    overlap: int = 32
    batch: int = 4
    resume: bool | str = False  # True: continue from the journal; "auto": continue if it matches, else start over
    skip_clear: bool = False
    clear_fraction: float = 0.01
    align: bool = False
    reference: Path | None = None
    labels: Path | None = None
    cloud: Path | None = None
    quicklook: bool = True
    queue_depth: int = 4  # tiles waiting between stages: deeper queues fill while the writer flushes a strip, raising the peak
    compress: str = "zstd"
    workers: int | None = None  # concurrent inference calls; None: default_workers()
    resolution: float | None = None  # metres; None: the finest optical band's grid
    optical_offset: float | None = None  # added to every optical DN; None: what the data says
    band_width: int = 2048  # columns streamed at a time (``column_bands``): memory follows this, not the scene's width
    public_key: str | None = None  # PEM: the model must be an artifact or engine signed with its private key


def open_runner(model: str | None, backend: str, public_key: str | None = None) -> tuple[Runner, dict]:
    """The runner and the model's metadata (normalisation, classes, colours). Its files are
    checked against their digests first, and its signature with ``public_key``."""
    from ..backends import registry as backends
    from ..backends.factory import check_folder, from_report, load_runner, model_metadata, resolve_backend
    from ..contract import shipped_artifact_path

    path = Path(model) if model else None
    picked = None
    if path is not None and path.is_file() and path.suffix == ".json":
        report, (path, best_backend, picked) = path, from_report(path)
        if backend not in ("auto", best_backend):
            raise ConfigError(
                f"{report}: its fastest row within budget runs on {best_backend}; leave --backend auto or pass the artifact itself"
            )
        backend = best_backend
    if path is None and (
        backends.get(backend).reads == "artifact" if backend != "auto" else backends.first_reading("checkpoint").missing() is not None
    ):
        # A runtime install (no torch), or a backend that runs artifacts: the shipped model
        # as its packaged FP32 artifact.
        path = shipped_artifact_path()
    check_folder(Path(path) if path is not None else None, public_key)  # before any of its records is read
    backend = resolve_backend(path, backend)
    runner = load_runner(path, backend=backend, checked=True)
    meta = model_metadata(runner, backend, path)
    if picked is not None:
        meta["picked_from_report"] = {
            "report": str(report),
            "row": f"{picked['backend']} {picked['precision']}",
            "latency_ms_p50": picked["latency_ms_p50"],
        }
    return runner, meta


def scene_jobs(spec: str | Path) -> list[dict]:
    """Scenes to stream for ``--pairs``: a pairs CSV, or any data-set spec (``sen12mscr:ROOT``,
    ``luojia:ROOT``, ``pairs:CSV``, a synth folder; test split by default). Labels travel
    only where they are plain class ids (SEN12MS's IGBP codes need the reader's mapping)."""
    from ..data.specs import open_dataset, parse_spec

    kind, path, _ = parse_spec(str(spec))
    if kind == "folder" and Path(path).is_file():
        return read_pairs(path)
    dataset = open_dataset(str(spec), split="test")
    jobs = []
    for sample in dataset.samples:
        p = sample.paths
        labels = p.get("labels") if dataset.label_codes == "ids" else None
        jobs.append(
            {
                "optical": p["optical"],
                "sar": p["sar"],
                "reference": p.get("clear"),
                "labels": labels,
                "cloud": p.get("cloud"),
                "name": sample.name,
            }
        )
    return jobs


def check_stream_options(opts: StreamOptions) -> None:
    """Every check of a stream's options and side files that can fail before anything is
    created."""
    from .assemble import COMPRESSION
    from .tiles import check_tiling

    if opts.batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {opts.batch}")
    for path in (opts.reference, opts.labels, opts.cloud):
        if path is not None and not Path(path).exists():
            raise DataError(f"{path}: not found; check the path")
    check_tiling(opts.tile, opts.overlap)
    if opts.compress not in COMPRESSION:
        raise ConfigError(f"--compress {opts.compress!r} is not one of {', '.join(COMPRESSION)}")
    if opts.workers is not None and opts.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {opts.workers}")
    if opts.band_width < opts.tile:
        raise ConfigError(f"--band-width {opts.band_width} must be at least the tile ({opts.tile})")


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"{out}: output folder is not writable ({exc.strerror}); pick another --out") from exc
