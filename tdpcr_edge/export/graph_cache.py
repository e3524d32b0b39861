"""Traced graphs kept on disk between processes: ``torch.onnx.export`` is the slowest step of
an export (docs/export.md), and each `tdpcr-edge export` of the same checkpoint at another
precision (a fresh process) would trace the same graph again.

An entry is the simplified FP32 graph, named by a key that covers everything that decides
it: the weights, config, tile and options (``onnx_graph._export_key``), the source of the
packages that build and trace the model, and the versions of the libraries that trace and
simplify it. Any change to one of them is a new key, so a stale graph is never read; an entry
whose content does not match the digest stored with it is removed and the graph traced again.

``$TDPCR_GRAPH_CACHE`` names the folder (default ``~/.cache/tdpcr-edge/graphs``); ``off``
keeps nothing. The newest ``KEEP`` entries are kept. A cache that cannot be written costs
nothing but the trace: it is never a reason for an export to fail. Processes that need the
same missing graph at once trace it once: the others wait on a lock file beside the entry
(``tracing``) and then read the entry the first one stored."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from importlib import metadata
from pathlib import Path
from typing import Iterator

from ..io_utils import atomic_path, user_cache

ENV = "TDPCR_GRAPH_CACHE"
KEEP = 16
# How long a process waits for another's trace of the same graph before tracing it itself:
# well beyond one trace, also one slowed by a second trace beside it (docs/export.md).
LOCK_WAIT_S = 600
PACKAGE = Path(__file__).resolve().parents[1]
# What builds the model and traces it (the plugin node's name, version and schema too): a
# change to any of these files changes every key.
SOURCES = ("model", "export", "contract.py", "backends/tdp_pgf_op.py")
LIBRARIES = ("torch", "onnx", "onnxscript", "onnxsim")


def cache_dir() -> Path | None:
    env = os.environ.get(ENV)
    if env and env.lower() in ("off", "0", "none"):
        return None
    return Path(env) if env else user_cache("graphs")


@functools.lru_cache(maxsize=None)
def code_fingerprint(root: Path = PACKAGE, sources: tuple[str, ...] = SOURCES) -> str:
    """sha256 of the Python sources ``root/<sources>`` (files, or folders' .py files) and the
    tracing libraries' versions."""
    h = hashlib.sha256()
    for source in sources:
        for path in sorted((root / source).rglob("*.py")) if (root / source).is_dir() else [root / source]:
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    for name in LIBRARIES:
        try:
            h.update(f"{name}=={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{name} absent".encode())
    return h.hexdigest()


def _path(folder: Path, key: str) -> Path:
    return folder / f"{key}.graph"  # the graph's sha256, then the serialised ONNX model


def load(key: str) -> bytes | None:
    """The serialised graph stored under ``key``, or None."""
    folder = cache_dir()
    if folder is None:
        return None
    path = _path(folder, key)
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    data = blob[32:]
    damaged = hashlib.sha256(data).digest() != blob[:32]
    with contextlib.suppress(OSError):  # a read-only cache still serves its entries
        if damaged:
            path.unlink()  # traced again
        else:
            os.utime(path)  # the entries used last are the ones kept
    return None if damaged else data


@contextlib.contextmanager
def tracing(key: str) -> Iterator[None]:
    """Held while ``key``'s graph is traced and stored, so that a second process missing the
    same graph waits for the first's entry (``load`` it again inside) instead of tracing it
    beside it. The lock is the OS's (flock): a holder killed midway releases it. A cache that
    cannot hold a lock file, or a holder still tracing after ``LOCK_WAIT_S``, costs only the
    trace."""
    from filelock import FileLock, Timeout

    folder = cache_dir()
    lock = None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock = FileLock(folder / f"{key}.lock", timeout=LOCK_WAIT_S)
            lock.acquire()
        except (OSError, Timeout):
            lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def store(key: str, data: bytes) -> None:
    folder = cache_dir()
    if folder is None:
        return
    try:
        with atomic_path(_path(folder, key)) as tmp:
            tmp.write_bytes(hashlib.sha256(data).digest() + data)
        entries = sorted(folder.glob("*.graph"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".lock").unlink(missing_ok=True)
    except OSError:
        return
