"""Where the built kernel libraries are (the fused PGF kernel, its host reference, the
TensorRT plugin): $TDPCR_KERNEL_DIR, then the repository's build/ folder. No torch: the
TensorRT runtime and doctor look them up in a runtime install."""

from __future__ import annotations

import os
from pathlib import Path

LIB_NAMES = {"cuda": "libtdpcr_pgf_cuda.so", "host": "libtdpcr_pgf_host.so", "plugin": "libtdpcr_trt_plugin.so"}


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("TDPCR_KERNEL_DIR"):
        dirs.append(Path(os.environ["TDPCR_KERNEL_DIR"]))
    dirs.append(Path(__file__).resolve().parents[2] / "build")
    return dirs


def find_library(kind: str) -> Path | None:
    for d in search_dirs():
        if (d / LIB_NAMES[kind]).is_file():
            return d / LIB_NAMES[kind]
    return None
