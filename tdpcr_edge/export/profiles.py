"""Deployment target profiles: ``export/profiles/<name>.toml`` in the repository (or the
folder named by ``TDPCR_PROFILES``). One file per target.

Two kinds. A ``tensorrt`` profile is a GPU device: TensorRT version range, CUDA, GPU SM,
memory, default precision, tile, workspace. A ``cpu`` profile is a CPU runtime: the backend
that runs it and a table that picks the precision from the CPU's instruction set, because
which precision is fastest depends on it (BF16 with AMX, INT8 with VNNI, ...)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

KINDS = ("tensorrt", "cpu")
INT8_PLACEMENTS = ("tensorrt", "cpu")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    precision: str
    tile: int
    kind: str = "tensorrt"
    tensorrt_min: str = ""
    tensorrt_max: str = ""
    cuda: str = ""
    gpu_sm: int = 0
    memory_gb: float = 0.0
    workspace_mb: int = 1024
    jetpack: str | None = None
    max_batch: int = 1
    notes: str = ""
    backend: str = "ort"  # what the export's drift is measured on, and what `infer --backend auto` runs
    int8_placement: str = "tensorrt"
    # cpu profiles: [(ISA feature or "" for any CPU, precision)], the first the CPU has wins
    precision_by_isa: tuple[tuple[str, str], ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    def precision_for(self, isa=None) -> tuple[str, str]:
        """The precision this profile picks on a CPU, and why (the ISA row that chose it).
        TensorRT profiles have one precision whatever the host."""
        if not self.is_cpu:
            return self.precision, "the profile's precision"
        from ..probe import cpu_isa

        isa = isa or cpu_isa()
        for feature, precision in self.precision_by_isa:
            if not feature or isa.has(feature):
                return precision, f"this CPU has {feature}" if feature else "no faster path on this CPU"
        return self.precision, "the profile's fallback precision"


def _check_rows(rows: tuple[tuple[str, str], ...]) -> None:
    """Every ISA feature and precision of a CPU profile's table is one we know."""
    from .. import precisions
    from ..probe import ARM_FEATURES, X86_FEATURES

    features = {label for label, _ in X86_FEATURES + ARM_FEATURES}
    for isa, precision in rows:
        if isa and isa not in features:
            raise ValueError(f"precision_by_isa: unknown isa {isa!r} (one of {', '.join(sorted(features))})")
        if precision not in precisions.names():
            raise ValueError(f"precision_by_isa: unknown precision {precision!r} (one of {', '.join(precisions.names())})")


def profiles_dir() -> Path:
    env = os.environ.get("TDPCR_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "export" / "profiles"


def list_profiles(kind: str | None = None) -> list[str]:
    folder = profiles_dir()
    names = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
    return names if kind is None else [n for n in names if load_profile(n).kind == kind]


def load_profile(name: str) -> Profile:
    path = profiles_dir() / f"{name}.toml"
    if not path.exists():
        known = ", ".join(list_profiles()) or f"none in {profiles_dir()}"
        raise ConfigError(f"unknown target profile {name!r}: choose one of {known}")
    try:
        d = tomllib.loads(path.read_text())
        kind = d.pop("kind", "tensorrt")
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        common = dict(name=d.pop("name", name), description=d.pop("description"), tile=int(d.pop("tile")), kind=kind,
                      notes=d.pop("notes", ""), int8_placement=d.pop("int8_placement", "tensorrt"))
        if common["int8_placement"] not in INT8_PLACEMENTS:
            raise ValueError(f"int8_placement {common['int8_placement']!r} is not one of {', '.join(INT8_PLACEMENTS)}")
        if kind == "cpu":
            rows = tuple((str(r.get("isa", "")), str(r["precision"])) for r in d.pop("precision_by_isa"))
            if not rows or rows[-1][0]:
                raise ValueError("precision_by_isa must end with a row without isa (the precision for any CPU)")
            _check_rows(rows)
            return Profile(**common, precision=rows[-1][1], backend=d.pop("backend"), precision_by_isa=rows, extra=d)
        trt = d.pop("tensorrt")
        _check_rows((("", str(d.get("precision"))),))
        return Profile(
            **common,
            precision=d.pop("precision"),
            tensorrt_min=str(trt["min"]),
            tensorrt_max=str(trt["max"]),
            cuda=str(d.pop("cuda")),
            gpu_sm=int(d.pop("gpu_sm")),
            memory_gb=float(d.pop("memory_gb")),
            workspace_mb=int(d.pop("workspace_mb")),
            jetpack=d.pop("jetpack", None),
            max_batch=int(d.pop("max_batch", 1)),
            backend=d.pop("backend", "ort"),
            extra=d,
        )
    except (tomllib.TOMLDecodeError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: malformed profile ({exc}); compare it with the shipped profiles") from exc
