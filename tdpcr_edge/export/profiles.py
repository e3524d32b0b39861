"""Deployment target profiles: ``export/profiles/<name>.toml`` in the repository (or the
folder named by ``TDPCR_PROFILES``). One file per device: TensorRT version range, CUDA,
GPU SM, memory, default precision, tile, workspace."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    tensorrt_min: str
    tensorrt_max: str
    cuda: str
    gpu_sm: int
    memory_gb: float
    precision: str
    tile: int
    workspace_mb: int
    jetpack: str | None = None
    max_batch: int = 1
    notes: str = ""
    extra: dict = field(default_factory=dict)


def profiles_dir() -> Path:
    env = os.environ.get("TDPCR_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "export" / "profiles"


def list_profiles() -> list[str]:
    folder = profiles_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def load_profile(name: str) -> Profile:
    path = profiles_dir() / f"{name}.toml"
    if not path.exists():
        known = ", ".join(list_profiles()) or f"none in {profiles_dir()}"
        raise ConfigError(f"unknown target profile {name!r}: choose one of {known}")
    try:
        d = tomllib.loads(path.read_text())
        trt = d.pop("tensorrt")
        return Profile(
            name=d.pop("name", name),
            description=d.pop("description"),
            tensorrt_min=str(trt["min"]),
            tensorrt_max=str(trt["max"]),
            cuda=str(d.pop("cuda")),
            gpu_sm=int(d.pop("gpu_sm")),
            memory_gb=float(d.pop("memory_gb")),
            precision=d.pop("precision"),
            tile=int(d.pop("tile")),
            workspace_mb=int(d.pop("workspace_mb")),
            jetpack=d.pop("jetpack", None),
            max_batch=int(d.pop("max_batch", 1)),
            notes=d.pop("notes", ""),
            extra=d,
        )
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: malformed profile ({exc}); compare it with the shipped profiles") from exc
