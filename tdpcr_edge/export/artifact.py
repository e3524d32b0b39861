"""The artifact under construction: what ``tdpcr-edge export`` was asked for, resolved and
checked before any work (``plan``), and what each pass adds to it (the traced graph, the
precision's graph, calibration, the measured drift). Passes read and extend one ``Artifact``;
``measure`` is the drift of a candidate graph against torch FP32 on the held-out tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import onnx

from .. import precisions
from ..backends import registry as backends
from ..backends.factory import graph_runner
from ..backends.targets import INT8_PLACEMENTS, UNSIGNED_PLACEMENTS, Profile, load_profile
from ..backends.torch_runner import TorchRunner
from ..data.scenes import SceneArrays
from ..data.specs import open_dataset
from ..drift import measure_drift, parse_budget
from ..errors import ConfigError
from ..train.checkpoint import Checkpoint, load_checkpoint
from .calibration import check_calibration_method
from .heldout import DRIFT_SEED, tiles_from


@dataclass
class ExportOptions:
    out: Path
    precision: str | None = None  # None: the target profile's, else fp16
    checkpoint: Path | None = None
    target: str | None = None
    calib: str = "synthetic"
    calib_tiles: int = 32
    calib_method: str = "percentile"
    eval_data: str = "synthetic"
    eval_tiles: int = 16
    tile: int | None = None  # None: the target profile's, else 256
    plugin: bool = False
    drift_budget: str | None = None
    allow_drift: bool = False
    with_checkpoint: bool = True  # checkpoint.pt in the artifact: what a torch backend runs; no runtime needs it
    sensitivity_tiles: int = 4
    sensitivity_size: int = 128  # pixels: layers are ranked on crops; the chosen graph is gated on whole tiles
    backend: str | None = None  # what the drift is measured on (default: the target's, else ort; a backend that runs the precision)
    int8_placement: str | None = None  # tensorrt or cpu (default: the target's, else tensorrt)


@dataclass
class Artifact:
    opts: ExportOptions
    stage: Callable[[str], None]
    profile: Profile | None
    precision: str
    chosen_by: str  # why this precision (the option, or the profile's ISA row)
    tile: int
    backend: str  # the drift is measured on it, and `infer --backend auto` runs it
    placement: str  # INT8 activations: tensorrt or cpu
    budget: dict[str, float]
    ckpt: Checkpoint
    model: object = None  # the checkpoint's model, built once (the trace and the QAT range lookup read it)
    proto32: onnx.ModelProto | None = None  # the traced, simplified FP32 graph
    proto: onnx.ModelProto | None = None  # the graph the artifact will hold
    calibration: dict | None = None
    fallback: list[str] = field(default_factory=list)  # mixed: convolutions moved to FP16
    sensitivity: dict[str, float] | None = None
    plugin_precision: dict | None = None
    drift: dict | None = None
    golden: dict | None = None  # the golden set's tiles, FP32 outputs and record (passes/golden.py)
    _eval_tiles: list[SceneArrays] | None = None
    _reference: TorchRunner | None = None
    _measure: Callable[[onnx.ModelProto], dict] | None = None

    @property
    def eval_tiles(self) -> list[SceneArrays]:
        if self._eval_tiles is None:
            self.stage("load held-out tiles")
            c = self.ckpt.config
            self._eval_tiles = tiles_from(
                self.opts.eval_data, self.opts.eval_tiles, self.tile, self.ckpt.normalization, c.num_classes, DRIFT_SEED
            )
        return self._eval_tiles

    def measurer(self, tiles: list[SceneArrays], whole: bool = True) -> Callable[[onnx.ModelProto], dict]:
        """Drift of a graph on ``tiles``; torch's results on them are computed once, and so
        is the drift of the graph measured last (mixed's search ends on the graph it ships,
        which the gate then measures again). Whole graphs are measured on the artifact's own
        backend; single layers (``whole=False``, a ranking only) on ONNX Runtime."""
        reference, c, cache = self.reference_runner(), self.ckpt.config, {}

        def measure(proto: onnx.ModelProto) -> dict:
            if cache.get("proto") is not proto:
                runner = graph_runner(proto, c.to_dict(), self.backend if whole else "ort", self.precision)
                cache["drift"], cache["ref"] = measure_drift(reference, runner, tiles, c.num_classes, cache.get("ref"))
                cache["proto"] = proto
            return dict(cache["drift"])

        return measure

    def reference_runner(self) -> TorchRunner:
        """torch FP32 on the checkpoint: what every drift is measured against."""
        if self._reference is None:
            self._reference = TorchRunner(self.ckpt.path)
        return self._reference

    def measure(self, proto: onnx.ModelProto) -> dict:
        """Drift of ``proto`` on the held-out tiles the export is gated on."""
        if self._measure is None:
            self._measure = self.measurer(self.eval_tiles)
        return self._measure(proto)


def resolve_runtime(opts: ExportOptions, profile: Profile | None, precision: str) -> tuple[str, str]:
    """(drift backend, INT8 placement) from the options, the target profile and the precision
    registry, checked before any work: a precision runs on the backends its row names (bf16 on
    OpenVINO only), TensorRT takes symmetric INT8 only."""
    prec = precisions.get(precision)
    gates = backends.drift_backends()
    default = profile.backend if profile else "ort"
    backend = opts.backend or (default if prec.runs_on(default) else next(b for b in gates if prec.runs_on(b)))
    if backend not in gates:
        raise ConfigError(f"--backend {backend}: the drift is measured on {' or '.join(gates)}")
    if not prec.runs_on(backend):
        raise ConfigError(
            f"--precision {precision} is {prec.description}: measure it with --backend {' or '.join(b for b in gates if prec.runs_on(b))}"
        )
    placement = opts.int8_placement or (profile.int8_placement if profile else "tensorrt")
    if placement not in INT8_PLACEMENTS:
        raise ConfigError(f"--int8-placement {placement}: choose one of {', '.join(INT8_PLACEMENTS)}")
    if placement in UNSIGNED_PLACEMENTS and profile is not None and not profile.is_cpu:
        raise ConfigError(
            f"--int8-placement {placement} writes UINT8 activations, which TensorRT does not take; target {profile.name} needs tensorrt"
        )
    if backend == "openvino":
        from ..backends.openvino_runner import check_inference_precision, import_openvino

        import_openvino()
        check_inference_precision(prec.inference_precision("openvino"))
    return backend, placement


def plan(opts: ExportOptions, stage: Callable[[str], None]) -> Artifact:
    """Every cheap check first, so a typo does not cost an export."""
    profile = load_profile(opts.target) if opts.target else None
    chosen, why = profile.precision_for() if profile else ("fp16", "the default")
    precision = precisions.get(opts.precision or chosen).name
    why = "--precision" if opts.precision else why
    if profile is not None and profile.kind not in precisions.get(precision).targets:
        raise ConfigError(
            f"--precision {precision}: a {profile.kind} target ({profile.name}) cannot build it; choose one of "
            f"{', '.join(n for n, p in precisions.REGISTRY.items() if profile.kind in p.targets)}"
        )
    tile = opts.tile or (profile.tile if profile else 256)
    backend, placement = resolve_runtime(opts, profile, precision)
    budget = parse_budget(opts.drift_budget)
    if precisions.get(precision).calibrated:
        check_calibration_method(opts.calib_method)
        if opts.calib != "synthetic":
            open_dataset(opts.calib, "val")  # indexes and checks the layout
    if opts.eval_data != "synthetic":
        open_dataset(opts.eval_data, "test")
    ckpt = load_checkpoint(opts.checkpoint)
    if tile % ckpt.config.multiple:
        raise ConfigError(f"--tile {tile} is not a multiple of {ckpt.config.multiple}, which the {ckpt.config.name} model needs")
    return Artifact(opts, stage, profile, precision, why, tile, backend, placement, budget, ckpt)
