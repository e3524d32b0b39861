"""Helpers the tests share for making bad inputs out of good scenes."""

from __future__ import annotations

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
