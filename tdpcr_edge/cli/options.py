"""Options declared once. Families shared by several commands are ``Annotated`` aliases
(checkpoint, target, drift budget, calibration, tile); choices come from the registries as
they are when the app is built (``choices()``), so ``--help`` lists them, a registered backend
appears in every command that takes one, and a typo is click's usage error (exit 2). Every
numeric option has its range here or beside it: a value out of range is one line, exit 2."""

from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import typer


def _enum(name: str, values) -> type[StrEnum]:
    return StrEnum(name, {v: v for v in values})


def choices() -> SimpleNamespace:
    """Choice types built from the registries now (the backend and precision registries, the
    model configs, the target profiles, ...)."""
    from .. import precisions
    from ..backends import registry as backends
    from ..backends.targets import INT8_PLACEMENTS, list_profiles
    from ..export.calibration import CALIBRATION_METHODS
    from ..model import registry as architectures
    from ..model.registry import FUSIONS
    from ..stream.assemble import COMPRESSION
    from ..train.options import AMP

    config, fusion = _enum("Config", architectures.all_sizes()), _enum("Fusion", FUSIONS)
    arch = _enum("Arch", architectures.names())
    return SimpleNamespace(
        config_type=config,
        arch_type=arch,
        Arch=Annotated[arch, typer.Option(help="Architecture (`tdpcr-edge info --arch NAME`; docs/models.md).")],
        Config=Annotated[
            config, typer.Option(help="Size of the architecture: tiny or base (TDP-CR's), small or full (every architecture's).")
        ],
        Fusion=Annotated[fusion, typer.Option(help="Fusion: pgf, or concat for the ablation.")],
        backend=_enum("Backend", ("auto", *backends.names())),
        drift_backend=_enum("DriftBackend", backends.drift_backends()),
        compare_backend=_enum("CompareBackend", ("auto", *backends.drift_backends())),
        precision=_enum("Precision", precisions.names()),
        phase=_enum("Phase", ("1", "2", "both")),
        amp=_enum("Amp", AMP),
        compress=_enum("Compress", COMPRESSION),
        calib_method=_enum("CalibMethod", CALIBRATION_METHODS),
        placement=_enum("Int8Placement", INT8_PLACEMENTS),
        target=_enum("Target", list_profiles()),
        backend_names=", ".join(backends.names()),
        precision_names=", ".join(precisions.names()),
    )


def value(x):
    """An option's plain value (a StrEnum member is already a str; None stays None)."""
    return None if x is None else str(x) if isinstance(x, StrEnum) else x


# Families of options several commands share.
Checkpoint = Annotated[Optional[Path], typer.Option(help="Checkpoint; the shipped tiny model when left out.")]
DriftBudget = Annotated[Optional[str], typer.Option(help="Largest allowed drift, e.g. psnr=0.3,miou=1.0 (the default).")]
Calib = Annotated[str, typer.Option(help="Calibration data for int8/mixed: 'synthetic', a scene folder or a data-set spec (val split).")]
CalibTiles = Annotated[int, typer.Option(min=1, help="Calibration tiles.")]
EvalTiles = Annotated[int, typer.Option(min=1, help="Held-out tiles of the drift gate.")]
Tile = Annotated[int, typer.Option(min=8, help="Tile size in pixels (a multiple of the model's stride).")]


def positive(x: float | None) -> float | None:
    """Callback of the options that must be greater than 0 (click's ranges are closed)."""
    if x is not None and not x > 0:
        raise typer.BadParameter(f"{x} is not greater than 0")
    return x
