"""Folders of synthetic scenes, as ``tdpcr-edge synth`` writes them: scene_0000 ... and legend.json."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import DataError
from .normalize import Normalization
from .scenes import write_legend, write_scene


def write_synthetic(
    out: str | Path,
    scenes: int,
    size: int,
    seed: int,
    num_classes: int = 6,
    on_scene: Callable[[], None] | None = None,
    bands: tuple[str, ...] | None = None,
    layout: str = "stack",
) -> list[Path]:
    """Write ``scenes`` synthetic scene folders (``scene_0000`` ...) and ``legend.json``.
    Scene i is ``make_scene(seed, i, size)``, so a folder can be regenerated exactly."""
    from ..errors import ConfigError
    from .bands import PRESETS
    from .layouts import check_layout
    from .synthetic import make_scene

    bands = tuple(bands or PRESETS["s2-l1c"])
    norm = Normalization(optical_bands=bands)
    if scenes < 1:
        raise ConfigError(f"--scenes must be at least 1, got {scenes}")
    if size < 16:
        raise ConfigError(f"--size must be at least 16 pixels, got {size}")
    check_layout(layout, size, bands)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; pick another output path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for i in range(scenes):
            scene = make_scene(seed, i, size, num_classes, bands=bands)
            written.append(write_scene(out / f"scene_{i:04d}", scene, norm, num_classes=num_classes, layout=layout))
            if on_scene:
                on_scene()
        write_legend(out, num_classes, seed=seed, size=size, scenes=scenes, bands=list(bands), layout=layout)
    except PermissionError as exc:
        raise DataError(f"{exc.filename or out}: not writable; pick an output folder you can write to") from exc
    return written
