"""The (backend, precision, variant, device) rows that ``tdpcr-edge bench``, the
pytest-benchmark suites and the report measure, derived from the two registries
(``backends.registry`` and ``precisions``): a new backend or precision brings its rows with it,
as Ultralytics keeps one table of formats for both export and benchmark. ``unavailable`` says,
in one line, why a row cannot run on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import precisions
from ..backends import registry as backends
from ..errors import ConfigError


@dataclass(frozen=True)
class Combo:
    backend: str
    precision: str
    variant: str = ""  # torch: eager | compile | fused; openvino: default (OpenVINO's own settings)
    device: str = "cpu"  # cpu | cuda

    @property
    def name(self) -> str:
        parts = (
            [self.backend, self.precision]
            + ([self.variant] if self.variant else [])
            + ([self.device] if self.reads == "checkpoint" else [])
        )
        return "-".join(parts)

    @property
    def reads(self) -> str:
        return backends.get(self.backend).reads

    @property
    def needs_artifact(self) -> bool:
        """Rows that run an exported artifact (or an engine built from one) of their precision."""
        return self.reads != "checkpoint"


def combos() -> tuple[Combo, ...]:
    """Every row of every registered backend, in registry order."""
    out: list[Combo] = []
    for b in backends.REGISTRY.values():
        rows = list(b.extra_rows)
        if b.rows is not None:
            rows += b.rows
        else:
            rows += [(p, "", b.devices[0]) for p, prec in precisions.REGISTRY.items() if prec.runs_on(b.name)]
        out += [Combo(b.name, p, v, d) for p, v, d in rows]
    return tuple(out)


def __getattr__(name: str):
    # COMBOS reads the registries as they are now, a registered toy backend included.
    if name == "COMBOS":
        return combos()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def unavailable(combo: Combo) -> str | None:
    """None when ``combo`` can run here, else the reason in one line: the backend's libraries,
    the precision's hardware, then the backend module's own checks."""
    b = backends.get(combo.backend)
    why = b.missing()
    if why:
        return why
    why = precisions.get(combo.precision).unavailable()
    if why:
        return why
    check = getattr(b.runner_module(), "unavailable", None)
    return check(combo) if check else None


def make_runner(combo: Combo, checkpoint, artifact, engine):
    """The runner of one row, on what its backend reads (a checkpoint, an artifact or an engine)."""
    from ..backends.factory import load_runner

    source = {"checkpoint": checkpoint, "artifact": artifact, "engine": engine}[combo.reads]
    return load_runner(source, backend=combo.backend, variant=combo.variant, device=combo.device, precision=combo.precision)


def _split(text: str | list[str] | tuple[str, ...], allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise ConfigError(f"unknown {what} {', '.join(bad) or '(none)'}: choose from {', '.join(allowed)}, comma-separated")
    return items


def select(backends_: str | list[str] | None = None, precisions_: str | list[str] | None = None) -> list[Combo]:
    """The rows for these backends and precisions (all when None), in registry order."""
    b = _split(backends_ or list(backends.names()), backends.names(), "backend")
    p = _split(precisions_ or list(precisions.names()), precisions.names(), "precision")
    return [c for c in combos() if c.backend in b and c.precision in p]
