"""`tdpcr-edge export`: checkpoint -> ONNX -> precision pass -> drift check -> artifact.

The artifact folder is assembled in a temporary folder and renamed into place only when
everything passed (or ``allow_drift`` was given), so a failed export leaves nothing behind:

    ART/model.onnx      the graph (FP32 I/O whatever the precision inside)
    ART/checkpoint.pt   the source checkpoint, so the torch backend can load the artifact
    ART/manifest.json   DESIGN section 4's fields
    ART/drift.json      the drift against torch FP32 on held-out tiles
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnx

from ..data.normalize import Normalization
from ..data.datasets import open_dataset
from ..data.scenes import SceneArrays
from ..data.sources import SyntheticSource
from ..errors import ConfigError, DataError
from ..io_utils import atomic_dir, write_json
from ..runtime.ort_runner import OrtRunner
from ..runtime.torch_runner import TorchRunner
from ..train.checkpoint import file_sha256, load_checkpoint
from .drift import DriftBudgetError, measure_drift, over_budget, parse_budget
from .manifest import build_manifest
from .onnx_graph import OPSET, export_onnx, io_signature
from .plugin_op import count_plugin_nodes
from .precision import Int8Quantizer, check_calibration_method, check_precision, fp16_islands, qat_tensor_ranges, to_fp16
from .profiles import INT8_PLACEMENTS, load_profile

# Held-out synthetic seeds: never used for training (seed 0) nor for the evaluation scenes
# of the README (seed 7), and distinct from each other.
DRIFT_SEED = 9001
CALIB_SEED = 9002


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
    sensitivity_tiles: int = 4
    sensitivity_size: int = 128  # pixels: layers are ranked on crops; the chosen graph is gated on whole tiles
    backend: str | None = None  # what the drift is measured on: ort or openvino (default: the target's, else ort; openvino for bf16)
    int8_placement: str | None = None  # tensorrt or cpu (default: the target's, else tensorrt)


DRIFT_BACKENDS = ("ort", "openvino")


def graph_runner(proto: onnx.ModelProto, config: dict, backend: str, precision: str):
    """A runner for an in-memory graph on ``backend``, computing as the artifact will run."""
    if backend == "openvino":
        from ..runtime.factory import inference_precision
        from ..runtime.openvino_runner import OpenVinoRunner

        # No model cache: the mixed search compiles many graphs that are never run again.
        return OpenVinoRunner(proto, config, inference_precision=inference_precision({"precision": precision}), cache="")
    return OrtRunner(proto, config)


def resolve_runtime(opts: ExportOptions, profile, precision: str) -> tuple[str, str]:
    """(drift backend, INT8 placement) from the options, the target profile and the precision,
    checked before any work: bf16 runs on OpenVINO only, TensorRT takes symmetric INT8 only."""
    backend = opts.backend or ("openvino" if precision == "bf16" else profile.backend if profile else "ort")
    if backend not in DRIFT_BACKENDS:
        raise ConfigError(f"--backend {backend}: the drift is measured on ort or openvino")
    if precision == "bf16" and backend != "openvino":
        raise ConfigError("--precision bf16 is the FP32 graph computed in BF16 by OpenVINO: measure it with --backend openvino")
    placement = opts.int8_placement or (profile.int8_placement if profile else "tensorrt")
    if placement not in INT8_PLACEMENTS:
        raise ConfigError(f"--int8-placement {placement}: choose one of {', '.join(INT8_PLACEMENTS)}")
    if placement == "cpu" and profile is not None and not profile.is_cpu:
        raise ConfigError(f"--int8-placement cpu writes UINT8 activations, which TensorRT does not take; target {profile.name} needs tensorrt")
    if backend == "openvino":
        from ..runtime.openvino_runner import check_inference_precision, import_openvino

        import_openvino()
        check_inference_precision("bf16" if precision == "bf16" else "f32")
    return backend, placement


def tiles_from(data: str, count: int, tile: int, norm: Normalization, num_classes: int, seed: int, split: str = "test") -> list[SceneArrays]:
    """``count`` tiles of ``tile`` pixels: from the synthetic world's ``seed`` or cut from the
    scenes of a data spec (``split`` of a data set; top-left windows, then the next ones,
    scene by scene)."""
    if data == "synthetic":
        return SyntheticSource(seed, num_classes, norm).scenes(count, tile)
    tiles = []
    for s in open_dataset(data, split).scenes(norm):
        h, w = s.valid.shape
        for y in range(0, h - tile + 1, tile):
            for x in range(0, w - tile + 1, tile):
                tiles.append(window(s, y, x, tile, f"{s.name}@{y},{x}"))
                if len(tiles) == count:
                    return tiles
    if not tiles:
        raise DataError(f"{data}: no scene is at least {tile}x{tile} pixels; pass larger scenes or a smaller --tile")
    return tiles


def window(scene: SceneArrays, y: int, x: int, size: int, name: str) -> SceneArrays:
    """The ``size`` x ``size`` window of ``scene`` at (``y``, ``x``), every layer alike."""
    win = (slice(y, y + size), slice(x, x + size))
    cut = lambda a: None if a is None else a[(..., *win)]  # noqa: E731
    return SceneArrays(name, cut(scene.optical), cut(scene.sar), cut(scene.valid), cut(scene.clear), cut(scene.labels), cut(scene.cloud))


def crop(scene: SceneArrays, size: int, multiple: int = 1) -> SceneArrays:
    """The top-left ``size`` x ``size`` window of a tile (at least one model multiple)."""
    size = max(multiple, size - size % multiple)
    return window(scene, 0, 0, size, f"{scene.name}[:{size}]")


def _digest(tiles: list[SceneArrays]) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tiles:
        h.update(t.optical.tobytes())
        h.update(t.sar.tobytes())
    return h.hexdigest()


def mixed_fallback(
    quantizer: Int8Quantizer,
    measure_layer: Callable[[onnx.ModelProto], dict],
    measure_graph: Callable[[onnx.ModelProto], dict],
    budget: dict[str, float],
) -> tuple[onnx.ModelProto, list[str], dict[str, float]]:
    """Per-layer sensitivity, then greedy fallback. The full INT8 graph is tried first: when
    it meets the budget, mixed is pure INT8 and no layer is ranked (empty sensitivity).
    Otherwise each convolution is quantised alone and scored by its drift relative to the
    budget (1.0 = one layer alone uses the whole budget), and the most sensitive layers move
    to FP16, doubling the count each round, until the graph meets the budget. Single layers
    are scored on a small tile set (``measure_layer``); whole graphs on the set that gates
    the export (``measure_graph``)."""

    def score(drift: dict) -> float:
        parts = [abs(drift["max_abs_error"] if k == "max_abs" else drift[f"{k}_delta"]) / v for k, v in budget.items() if v > 0]
        return max(parts, default=0.0)

    candidate = quantizer.quantize()
    if not over_budget(measure_graph(candidate), budget):
        return candidate, [], {}
    sensitivity = {conv: score(measure_layer(quantizer.quantize(nodes=[conv]))) for conv in quantizer.convs}
    order = sorted(sensitivity, key=sensitivity.get, reverse=True)
    fallback: list[str] = []
    while over_budget(measure_graph(candidate), budget) and len(fallback) < len(order):
        fallback = order[: max(1, 2 * len(fallback))]
        candidate = fp16_islands(quantizer.quantize(exclude=fallback), fallback)
    return candidate, fallback, sensitivity


def _short(drift: dict) -> dict:
    return {k: drift[k] for k in ("psnr_delta", "miou_delta", "max_abs_error") if k in drift}


def run_export(opts: ExportOptions, on_stage: Callable[[str], None] | None = None) -> dict:
    """Export, measure, gate and write the artifact; return its manifest."""
    stage = on_stage or (lambda name: None)
    # Cheap checks first: a typo should not cost an export.
    profile = load_profile(opts.target) if opts.target else None
    chosen, why = profile.precision_for() if profile else ("fp16", "the default")
    precision = check_precision(opts.precision or chosen)
    why = "--precision" if opts.precision else why
    tile = opts.tile or (profile.tile if profile else 256)
    backend, placement = resolve_runtime(opts, profile, precision)
    budget = parse_budget(opts.drift_budget)
    if precision in ("int8", "mixed"):
        check_calibration_method(opts.calib_method)
        if opts.calib != "synthetic":
            open_dataset(opts.calib, "val")  # indexes and checks the layout
    if opts.eval_data != "synthetic":
        open_dataset(opts.eval_data, "test")
    ckpt = load_checkpoint(opts.checkpoint)
    c = ckpt.config

    stage("export ONNX")
    model = ckpt.build()  # export_onnx works on a copy; the QAT range lookup reads it too
    proto32 = export_onnx(model, tile=tile, plugin=opts.plugin)

    stage("load held-out tiles")
    eval_tiles = tiles_from(opts.eval_data, opts.eval_tiles, tile, ckpt.normalization, c.num_classes, DRIFT_SEED)
    reference = TorchRunner(ckpt.path)

    def measurer(tiles: list[SceneArrays], whole: bool = True) -> Callable[[onnx.ModelProto], dict]:
        """Drift of a graph on ``tiles``; torch's results on them are computed once, and so
        is the drift of the graph measured last (mixed's search ends on the graph it ships,
        which the export then measures again). Whole graphs are measured on the artifact's
        own backend; single layers (``whole=False``, a ranking only) on ONNX Runtime."""
        cache: dict = {}

        def measure(proto: onnx.ModelProto) -> dict:
            if cache.get("proto") is not proto:
                runner = graph_runner(proto, c.to_dict(), backend if whole else "ort", precision)
                cache["drift"], cache["ref"] = measure_drift(reference, runner, tiles, c.num_classes, cache.get("ref"))
                cache["proto"] = proto
            return dict(cache["drift"])

        return measure

    measure = measurer(eval_tiles)

    calibration, fallback, sensitivity, plugin_precision = None, [], None, None
    if opts.plugin and precision != "fp16":
        plugin_precision = {"precision": "fp32"}  # INT8 and mixed graphs keep PGF's inputs in FP32
    if precision in ("fp32", "bf16"):  # bf16: the FP32 graph, computed in BF16 by OpenVINO
        proto = proto32
    elif precision == "fp16":
        stage("convert to FP16")
        proto = to_fp16(proto32)
        if opts.plugin:
            # TDP_PGF in FP16 runs the kernel's half path; FP32 islands around it only where
            # the drift requires them (both figures recorded).
            fp16_drift = measure(proto)
            plugin_precision = {"precision": "fp16", "fp16_drift": _short(fp16_drift)}
            if over_budget(fp16_drift, budget):
                islands = to_fp16(proto32, plugin_fp16=False)
                island_drift = measure(islands)
                if not over_budget(island_drift, budget):
                    proto = islands
                    plugin_precision = {"precision": "fp32", "fp16_drift": _short(fp16_drift), "fp32_drift": _short(island_drift),
                                        "why": "FP16 plugin nodes broke the drift budget; FP32 islands meet it"}
    else:
        stage(f"calibrate INT8 ({opts.calib_method})")
        calib_tiles = tiles_from(opts.calib, opts.calib_tiles, tile, ckpt.normalization, c.num_classes, CALIB_SEED, split="val")
        # A quantisation-aware checkpoint brings the ranges its weights were trained with;
        # calibration then only fills in tensors the training did not round.
        qat_ranges = qat_tensor_ranges(proto32, model, ckpt.qat_ranges) if ckpt.qat else {}
        quantizer = Int8Quantizer(proto32, [(t.optical, t.sar) for t in calib_tiles], opts.calib_method, ranges=qat_ranges, placement=placement)
        try:
            if precision == "int8":
                proto = quantizer.quantize()
            else:
                stage(f"per-layer sensitivity of {len(quantizer.convs)} convolutions")
                crops = [crop(t, opts.sensitivity_size, c.multiple) for t in eval_tiles[: opts.sensitivity_tiles]]
                measure_layer = measurer(crops, whole=False)
                proto, fallback, sensitivity = mixed_fallback(quantizer, measure_layer, measure, budget)
            calibration = {
                "source": opts.calib,
                "tiles": len(calib_tiles),
                "method": opts.calib_method,
                "percentile": 99.99 if opts.calib_method == "percentile" else None,
                "tiles_sha256": _digest(calib_tiles),
                "ranges_sha256": quantizer.calibration_digest(),
                "qat_ranges": len(qat_ranges),  # tensors whose range came from quantisation-aware training
                "placement": placement,
            }
        finally:
            quantizer.close()

    if profile is not None:  # before the drift is measured: a graph the target cannot take is not worth it
        from .trt_check import check_graph, refuse

        refuse(check_graph(proto, profile), f"{opts.out}", profile)
    stage("measure drift")
    drift = measure(proto)
    broken = over_budget(drift, budget)
    runtime = {"backend": backend, "inference_precision": "bf16" if precision == "bf16" else "graph", "precision_chosen_by": why}
    drift.update({"budget": budget, "within_budget": not broken, "precision": precision, "eval_data": opts.eval_data,
                  "backend": backend, "inference_precision": runtime["inference_precision"]})
    if broken and not opts.allow_drift:
        raise DriftBudgetError(
            f"{opts.out}: {precision} drift on {backend} over budget: {'; '.join(broken)}; nothing written. "
            "Loosen --drift-budget, try --precision mixed, train with --qat, or pass --allow-drift to keep it"
        )

    inputs, outputs = io_signature(proto)
    manifest = build_manifest(
        model=c.to_dict(),
        checkpoint={"file": "checkpoint.pt", "sha256": file_sha256(ckpt.path), "source": str(ckpt.path), "phase": ckpt.phase, "step": ckpt.step},
        opset=OPSET,
        precision=precision,
        tile=tile,
        plugin={"enabled": opts.plugin, "nodes": count_plugin_nodes(proto), "op": "TDP_PGF", "version": "1", **(plugin_precision or {})},
        inputs=inputs,
        outputs=outputs,
        normalization=ckpt.normalization.to_dict(),
        classes=ckpt.classes,
        colors=[list(col) for col in ckpt.colors],
        calibration=calibration,
        fp16_fallback_layers=fallback,
        layer_sensitivity=dict(sorted(sensitivity.items(), key=lambda kv: -kv[1])[:10]) if sensitivity else None,
        target=profile.name if profile else None,
        runtime=runtime,
        drift={k: v for k, v in drift.items() if k not in ("reference", "candidate")},
    )
    stage("write artifact")
    with atomic_dir(opts.out) as tmp:
        onnx.save(proto, str(tmp / "model.onnx"))
        shutil.copyfile(ckpt.path, tmp / "checkpoint.pt")
        manifest["model_bytes"] = (tmp / "model.onnx").stat().st_size
        manifest["onnx_sha256"] = file_sha256(tmp / "model.onnx")
        write_json(tmp / "manifest.json", manifest)
        write_json(tmp / "drift.json", drift)
    return manifest

