"""`tdpcr-edge ablation`: PGF against concatenation fusion over training seeds."""

from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError
from .console import console, progress_bar
from .options import choices


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: give integers separated by commas, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"--seeds {text!r}: give at least one training seed, each 0 or more, e.g. 0")
    return seeds


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def ablation(
        out: Annotated[
            Path, typer.Option("--out", help="Folder for the runs (OUT/seed-S/pgf, OUT/seed-S/concat), ablation.json and ablation.md.")
        ],
        config: c.Config = "tiny",
        steps: Annotated[int, typer.Option(min=1, help="Steps per phase, the same for both variants.")] = 1500,
        seeds: Annotated[str, typer.Option(help="Training seeds, comma-separated (e.g. 0,1,2); each trains both variants.")] = "0",
        qat: Annotated[
            bool, typer.Option("--qat", help="Train both variants quantisation-aware and also score them in INT8 (simulated).")
        ] = False,
        eval_seed: Annotated[int, typer.Option(min=0, help="Seed of the held-out scenes (never used in training).")] = 7,
        eval_scenes: Annotated[int, typer.Option(min=1, help="Held-out scenes.")] = 32,
        eval_size: Annotated[int, typer.Option(min=16, help="Held-out scene size in pixels.")] = 128,
    ) -> None:
        """PGF against concatenation fusion at an equal training budget, over training seeds."""
        from ..ablation import run_ablation

        seed_list = parse_seeds(seeds)
        with progress_bar("ablation", len(seed_list) * 2 * 2 * steps) as advance:
            run_ablation(out, str(config), steps, seed_list, eval_seed, eval_scenes, eval_size, qat=qat, on_step=lambda *a: advance(1))
        console.print((out / "ablation.md").read_text())
