"""Helpers the tests share for making bad inputs out of good scenes."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import rasterio


def copy_scene(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def rewrite_raster(path: Path, data, **changes) -> None:
    """Rewrite ``path`` with ``data`` (bands x rows x cols), keeping its profile but ``changes``."""
    with rasterio.open(path) as src:
        profile = src.profile
    profile.update(count=data.shape[0], height=data.shape[1], width=data.shape[2], **changes)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def run_main(args, capsys, monkeypatch) -> tuple[int, str, str]:
    """`tdpcr-edge ARGS` in this process (the CLI's own entry point, error handling included):
    exit code, stdout, stderr. Saves the seconds a fresh interpreter spends importing torch."""
    import sys

    from tdpcr_edge.cli import main

    monkeypatch.setattr(sys, "argv", ["tdpcr-edge", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@contextmanager
def fault_in(path: Path, before: str, after: str):
    """``path`` with its one ``before`` replaced by ``after`` for the block, then restored:
    a fault a test must catch."""
    text = path.read_text()
    assert text.count(before) == 1, f"the fault's anchor is gone from {path.name}: {before!r}"
    path.write_text(text.replace(before, after))
    try:
        yield
    finally:
        path.write_text(text)
