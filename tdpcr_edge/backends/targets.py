"""Deployment target profiles: one TOML file per target, shipped inside the package
(``tdpcr_edge/target_profiles``, read with importlib.resources, so a wheel carries
them; in the repository that folder links to ``export/profiles/``, where they are edited), or
the folder named by ``TDPCR_PROFILES``. Every key is checked on load: a key, ISA feature,
precision or backend we do not know is one line naming the file and the key.

Two kinds. A ``tensorrt`` profile is a GPU device: TensorRT version range, CUDA, GPU SM,
memory, default precision, tile, workspace. A ``cpu`` profile is a CPU runtime: the backend
that runs it and a table that picks the precision from the CPU's instruction set, because
which precision is fastest depends on it (BF16 with AMX, INT8 with VNNI, ...). A row of that
table may name its own ``int8_placement``: how INT8 is quantised on the CPUs that row picks
(those without VNNI need the placement that keeps 16-bit pair sums from saturating)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import tomllib

from ..errors import ConfigError
from ..records.profile import CpuProfileRecord, TensorrtProfileRecord

KINDS = ("tensorrt", "cpu")
SCHEMAS = {"tensorrt": TensorrtProfileRecord, "cpu": CpuProfileRecord}
# INT8 placements: tensorrt (symmetric INT8 activations, the only kind TensorRT takes); cpu
# (UINT8 where non-negative: x86 CPUs with VNNI or AMX); cpu-no-vnni (as cpu, every u8 x s8
# byte pair's sum within 16 bits: x86 CPUs without an INT8 dot product; export.quantizer).
NO_VNNI_PLACEMENT = "cpu-no-vnni"
INT8_PLACEMENTS = ("tensorrt", "cpu", NO_VNNI_PLACEMENT)
UNSIGNED_PLACEMENTS = ("cpu", NO_VNNI_PLACEMENT)  # UINT8 activations: a CPU runtime's, never TensorRT's


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
    default_int8_placement: str = "tensorrt"  # the profile's int8_placement key
    # cpu profiles: [(ISA feature or "" for any CPU, precision)], the first the CPU has wins
    precision_by_isa: tuple[tuple[str, str], ...] = ()
    # cpu profiles: each row's own int8_placement, "" where the row keeps the profile's
    int8_placement_by_isa: tuple[str, ...] = ()

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def int8_placement(self) -> str:
        """The INT8 placement an export for this profile uses here: a cpu profile's depends on
        this machine's ISA (``int8_placement_for``)."""
        return self.int8_placement_for()

    def _row(self, isa=None) -> int | None:
        """The index of the first ISA row this CPU has (None when no row matches)."""
        from ..probe import cpu_isa

        isa = isa or cpu_isa()
        for i, (feature, _) in enumerate(self.precision_by_isa):
            if not feature or isa.has(feature):
                return i
        return None

    def precision_for(self, isa=None) -> tuple[str, str]:
        """The precision this profile picks on a CPU, and why (the ISA row that chose it).
        TensorRT profiles have one precision whatever the host."""
        if not self.is_cpu:
            return self.precision, "the profile's precision"
        i = self._row(isa)
        if i is None:
            return self.precision, "the profile's fallback precision"
        feature, precision = self.precision_by_isa[i]
        return precision, f"this CPU has {feature}" if feature else "no faster path on this CPU"

    def int8_placement_for(self, isa=None) -> str:
        """How INT8 is quantised on a CPU: the int8_placement of the ISA row that CPU picks
        (whatever precision that row picks, since --precision int8 may override it), else
        the profile's. TensorRT profiles have one placement whatever the host."""
        if not self.is_cpu:
            return self.default_int8_placement
        i = self._row(isa)
        own = self.int8_placement_by_isa[i] if i is not None and i < len(self.int8_placement_by_isa) else ""
        return own or self.default_int8_placement


def _check_placement(placement: object, key: str = "int8_placement") -> str:
    if placement not in INT8_PLACEMENTS:
        raise ValueError(f"{key} {placement!r} is not one of {', '.join(INT8_PLACEMENTS)}")
    return str(placement)


def _check_rows(rows: tuple[tuple[str, str], ...], key: str = "precision_by_isa") -> None:
    """Every ISA feature and precision of a CPU profile's table is one we know."""
    from .. import precisions
    from ..probe import ARM_FEATURES, X86_FEATURES

    features = {label for label, _ in X86_FEATURES + ARM_FEATURES}
    for isa, precision in rows:
        if isa and isa not in features:
            raise ValueError(f"{key}: unknown isa {isa!r} (one of {', '.join(sorted(features))})")
        if precision not in precisions.names():
            raise ValueError(f"{key}: unknown precision {precision!r} (one of {', '.join(precisions.names())})")


def profiles_dir() -> Path:
    """The folder profiles are read from: ``TDPCR_PROFILES``, else the package's own."""
    env = os.environ.get("TDPCR_PROFILES")
    return Path(env) if env else Path(str(resources.files("tdpcr_edge") / "target_profiles"))


def list_profiles(kind: str | None = None) -> list[str]:
    folder = profiles_dir()
    names = sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []
    return names if kind is None else [n for n in names if load_profile(n).kind == kind]


def load_profile(name: str) -> Profile:
    from ..records import check

    path = profiles_dir() / f"{name}.toml"
    if not path.exists():
        known = ", ".join(list_profiles()) or f"none in {profiles_dir()}"
        raise ConfigError(f"unknown target profile {name!r}: choose one of {known}")
    fix = "compare it with the shipped profiles (tdpcr-edge doctor lists them)"
    try:
        d = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not TOML ({exc}); {fix}") from None
    kind = d.get("kind", "tensorrt")
    if kind not in KINDS:
        raise ConfigError(f"{path}: kind: {kind!r} is not one of {', '.join(KINDS)}; {fix}")
    check(d, SCHEMAS[kind], path, fix, ConfigError)
    try:
        return _parse(name, d)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}; {fix}") from None


def _parse(name: str, d: dict) -> Profile:
    """A profile its schema accepted, with what the registries know checked."""
    from . import registry as backends

    kind = d.get("kind", "tensorrt")
    common = dict(
        name=d.get("name", name),
        description=d["description"],
        tile=d["tile"],
        kind=kind,
        notes=d.get("notes", ""),
        default_int8_placement=_check_placement(d.get("int8_placement", "tensorrt")),
    )
    if kind == "tensorrt" and common["default_int8_placement"] in UNSIGNED_PLACEMENTS:
        raise ValueError(
            f"int8_placement {common['default_int8_placement']!r} writes UINT8 activations, which TensorRT does not take; use tensorrt"
        )
    backend = d.get("backend", "ort")
    if backend not in backends.names():
        raise ValueError(f"backend {backend!r} is not one of {', '.join(backends.names())}")
    if kind == "cpu":
        table = d["precision_by_isa"]
        rows = tuple((r.get("isa", ""), r["precision"]) for r in table)
        if rows[-1][0]:
            raise ValueError("precision_by_isa must end with a row without isa (the precision for any CPU)")
        _check_rows(rows)
        placements = tuple(
            _check_placement(r["int8_placement"], key=f"precision_by_isa[{i}].int8_placement") if "int8_placement" in r else ""
            for i, r in enumerate(table)
        )
        return Profile(**common, precision=rows[-1][1], backend=backend, precision_by_isa=rows, int8_placement_by_isa=placements)
    _check_rows((("", d["precision"]),), key="precision")
    return Profile(
        **common,
        precision=d["precision"],
        tensorrt_min=d["tensorrt"]["min"],
        tensorrt_max=d["tensorrt"]["max"],
        cuda=d["cuda"],
        gpu_sm=d["gpu_sm"],
        memory_gb=float(d["memory_gb"]),
        workspace_mb=d["workspace_mb"],
        jetpack=d.get("jetpack"),
        max_batch=d.get("max_batch", 1),
        backend=backend,
    )
