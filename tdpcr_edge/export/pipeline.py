"""`tdpcr-edge export`: checkpoint -> ONNX -> precision pass -> drift gate -> golden set -> artifact, as a
short sequence of passes over one artifact under construction (``export.artifact``; the
passes are ``export.passes``). The precision's pass is the one its row in the precision
registry names, so a new precision is its pass module plus one row."""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from .. import precisions
from .artifact import Artifact, ExportOptions, plan
from .heldout import CALIB_SEED, DRIFT_SEED, tiles_from
from .passes import gate, golden, trace, write

__all__ = ["CALIB_SEED", "DRIFT_SEED", "ExportOptions", "run_export", "tiles_from"]


def precision_pass(art: Artifact) -> None:
    """The artifact's precision's graph pass (``module:function``), if it has one."""
    spec = precisions.get(art.precision).graph_pass
    if spec:
        module, _, function = spec.partition(":")
        getattr(import_module(module), function)(art)


def run_export(opts: ExportOptions, on_stage: Callable[[str], None] | None = None) -> dict:
    """Export, measure, gate and write the artifact; return its manifest."""
    art = plan(opts, on_stage or (lambda name: None))
    trace.run(art)
    precision_pass(art)
    gate.run(art)
    golden.run(art)
    return write.run(art)
