"""`tdpcr-edge build-engine`: an artifact's ONNX -> a TensorRT engine, on the device.

The TensorRT calls are few and kept in ``build_engine``; everything around them (shapes of
the optimisation profile, engine.json, the compatibility rules a runner applies before
deserialising, the equivalent trtexec command line) is plain Python and tested without
TensorRT.

    ENGINE_DIR/model.engine   serialised engine (plugin library serialised inside when used)
    ENGINE_DIR/engine.json    TensorRT version, GPU name and SM, plugin and ONNX sha256,
                              build options, the artifact's model/normalisation fields, every
                              file's sha256 and the engine's drift on the golden set
    ENGINE_DIR/golden/        the artifact's golden set, which the engine is gated on
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ...contract import ENGINE_SCHEMA, PLUGIN_OP, file_sha256, read_manifest
from ...drift import parse_budget
from ...errors import ConfigError, TdpcrError
from ...io_utils import atomic_path
from ..targets import Profile, list_profiles, load_profile
from .compat import find_plugin_library
from .gate import check_golden_tile


@dataclass(frozen=True)
class BuildOptions:
    tile: int
    max_batch: int = 1
    workspace_mb: int = 1024
    timing_cache: str | None = None
    plugin_lib: str | None = None
    target: str | None = None


def profile_shapes(manifest: dict, tile: int, max_batch: int) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """min/opt/max shapes per input: batch 1..max_batch at exactly the tile size (fixed
    spatial shapes let TensorRT pick the fastest kernels; the runner pads edge tiles)."""
    m = manifest["model"]
    multiple = 2 ** (len(m["widths"]) - 1)
    if tile % multiple:
        raise ConfigError(f"tile {tile} is not a multiple of {multiple}, which the {m['name']} model needs")
    if max_batch < 1:
        raise ConfigError(f"max batch must be at least 1, got {max_batch}")
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
    for name, bands in (("optical", m["optical_bands"]), ("sar", m["sar_bands"])):
        shapes[name] = ((1, bands, tile, tile), (1, bands, tile, tile), (max_batch, bands, tile, tile))
    return shapes


def graph_uses_plugin(manifest: dict) -> bool:
    return bool(manifest.get("plugin", {}).get("nodes"))


def check_tensorrt_artifact(artifact: Path, manifest: dict, target: str | None = None) -> None:
    """Refuse artifacts made for a CPU runtime: UINT8 activations (TensorRT takes symmetric
    INT8 only) and bf16 (a runtime precision of OpenVINO, not a graph TensorRT can build);
    then the graph itself, node by node, against the target's TensorRT (export.trt_check)."""
    from ..targets import UNSIGNED_PLACEMENTS

    if (manifest.get("calibration") or {}).get("placement") in UNSIGNED_PLACEMENTS:
        raise ConfigError(
            f"{artifact}: exported for a CPU runtime (UINT8 activations), which TensorRT does not take; "
            "export it again with a TensorRT --target or --int8-placement tensorrt"
        )
    if manifest["precision"] == "bf16":
        raise ConfigError(f"{artifact}: a bf16 artifact is run in BF16 by OpenVINO on a CPU; export --precision fp16 for TensorRT")
    import onnx

    from .check import check_graph, refuse

    profile = load_profile(target) if target else None
    if profile is not None and profile.is_cpu:
        return  # resolve_options names the mistake
    refuse(check_graph(onnx.load(str(Path(artifact) / "model.onnx")), profile), artifact, profile)


def trtexec_command(onnx: Path, engine: Path, shapes: dict, opts: BuildOptions) -> str:
    """The trtexec line that builds the same engine, for people who prefer it."""

    def dims(i):
        return ",".join(f"{n}:{'x'.join(map(str, s[i]))}" for n, s in shapes.items())

    args = [
        "trtexec",
        f"--onnx={onnx}",
        f"--saveEngine={engine}",
        "--stronglyTyped",
        f"--minShapes={dims(0)}",
        f"--optShapes={dims(1)}",
        f"--maxShapes={dims(2)}",
        f"--memPoolSize=workspace:{opts.workspace_mb}M",
    ]
    if opts.timing_cache:
        args.append(f"--timingCacheFile={opts.timing_cache}")
    if opts.plugin_lib:
        args += [f"--dynamicPlugins={opts.plugin_lib}", f"--setPluginsToSerialize={opts.plugin_lib}"]
    return shlex.join(args)


def engine_record(
    manifest: dict, onnx_sha256: str, trt_version: str, gpu_name: str, gpu_sm: str, opts: BuildOptions, plugin_sha256: str | None
) -> dict:
    return {
        "schema_version": ENGINE_SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tensorrt": trt_version,
        "gpu": {"name": gpu_name, "sm": gpu_sm},
        "onnx_sha256": onnx_sha256,
        "plugin": {"used": plugin_sha256 is not None, "sha256": plugin_sha256, "library": opts.plugin_lib},
        "build": asdict(opts),
        "precision": manifest["precision"],
        "model": manifest["model"],
        "normalization": manifest["normalization"],
        "classes": manifest["classes"],
        "colors": manifest["colors"],
        "inputs": manifest["inputs"],
        "outputs": manifest["outputs"],
        "golden": manifest.get("golden"),  # the golden set's record, with the drift export measured on it
    }


def match_profile(gpu_sm: str, trt_version: str | None, names: list[str]) -> Profile | None:
    """The first target profile whose SM matches and whose TensorRT range holds ``trt_version``."""
    from .compat import in_range

    sm = int(str(gpu_sm).replace(".", ""))
    for name in names:
        p = load_profile(name)
        if not p.is_cpu and p.gpu_sm == sm and (trt_version is None or in_range(trt_version, p.tensorrt_min, p.tensorrt_max)):
            return p
    return None


def resolve_options(
    manifest: dict,
    target: str | None,
    plugin_lib: str | Path | None,
    timing_cache: str | None,
    workspace_mb: int | None,
    max_batch: int | None,
) -> BuildOptions:
    """Explicit options first, then the target profile's, then defaults; the tile is the artifact's."""
    profile = load_profile(target) if target else None
    if profile is not None and profile.is_cpu:
        raise ConfigError(
            f"--target {target} is a CPU profile ({profile.backend}); TensorRT engines are built for GPU profiles: "
            f"{', '.join(list_profiles('tensorrt'))}"
        )
    return BuildOptions(
        tile=manifest["tile"],
        max_batch=max_batch or (profile.max_batch if profile else 1),
        workspace_mb=workspace_mb or (profile.workspace_mb if profile else 1024),
        timing_cache=str(timing_cache) if timing_cache else None,
        plugin_lib=str(plugin_lib) if plugin_lib else None,
        target=profile.name if profile else None,
    )


def build_engine(
    artifact: str | Path,
    out: str | Path,
    target: str | None = None,
    plugin_lib: str | None = None,
    timing_cache: str | None = None,
    workspace_mb: int | None = None,
    max_batch: int | None = None,
    drift_budget: str | None = None,
    public_key: str | Path | None = None,
) -> dict:
    """Parse ``artifact/model.onnx`` into a strongly typed network and build the engine on
    this GPU. The artifact's signature (with ``public_key``) and digests are checked first.
    Raises MissingDependency (what to install) when TensorRT is absent."""
    from ..factory import check_folder
    from .compat import detect_gpus, import_tensorrt, network_flags, set_workspace

    artifact, out = Path(artifact), Path(out)
    check_folder(artifact, public_key)
    manifest = read_manifest(artifact)
    check_tensorrt_artifact(artifact, manifest, target)
    plugin = find_plugin_library(plugin_lib) if graph_uses_plugin(manifest) else None
    if graph_uses_plugin(manifest) and plugin is None:
        raise ConfigError(
            f"{artifact}: the graph has {PLUGIN_OP} nodes but no plugin library was found; pass --plugin-lib or run `make kernels "
            "TRT_INCLUDE=...`"
        )
    opts = resolve_options(manifest, target, plugin, timing_cache, workspace_mb, max_batch)
    shapes = profile_shapes(manifest, opts.tile, opts.max_batch)
    check_golden_tile(artifact, manifest)
    parse_budget(drift_budget)  # a typo costs no build

    import_tensorrt()  # one line naming what to install when it is missing
    import tensorrt as trt  # a plain import, so the calls below are type-checked against tensorrt-stubs

    gpus = detect_gpus()
    if not gpus:
        raise TdpcrError("no CUDA GPU found; build the engine on the device that will run it")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if plugin is not None:
        builder.get_plugin_registry().load_library(str(plugin))
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(artifact / "model.onnx")):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TdpcrError(f"{artifact / 'model.onnx'}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    set_workspace(config, trt, opts.workspace_mb)
    opt_profile = builder.create_optimization_profile()
    for name, (lo, mid, hi) in shapes.items():
        # TensorRT's bindings convert any int sequence to Dims; the stubs name Dims only.
        opt_profile.set_shape(name, lo, mid, hi)  # type: ignore[arg-type]
    config.add_optimization_profile(opt_profile)
    if plugin is not None:
        config.plugins_to_serialize = [str(plugin)]
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).exists() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TdpcrError(f"{artifact}: TensorRT could not build an engine (see the messages above)")
    record = engine_record(
        manifest,
        file_sha256(artifact / "model.onnx"),
        trt.__version__,
        gpus[0].name,
        gpus[0].sm,
        opts,
        file_sha256(plugin) if plugin else None,
    )
    from .gate import write_engine_folder
    from .runner import TrtRunner

    write_engine_folder(out, artifact, bytes(serialized), record, parse_budget(drift_budget), lambda folder: TrtRunner(folder, plugin))
    if timing_cache:
        with atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    record["trtexec"] = trtexec_command(artifact / "model.onnx", out / "model.engine", shapes, opts)
    return record


def plan_trtexec(
    artifact: str | Path,
    out: str | Path,
    target: str | None = None,
    plugin_lib: str | None = None,
    timing_cache: str | None = None,
    workspace_mb: int | None = None,
    max_batch: int | None = None,
) -> str:
    """The trtexec line for an artifact, without building (works without TensorRT)."""
    from ..factory import check_folder

    artifact, out = Path(artifact), Path(out)
    check_folder(artifact)
    manifest = read_manifest(artifact)
    check_tensorrt_artifact(artifact, manifest, target)
    if plugin_lib is None and graph_uses_plugin(manifest):
        plugin_lib = "libtdpcr_trt_plugin.so"
    opts = resolve_options(manifest, target, plugin_lib, timing_cache, workspace_mb, max_batch)
    return trtexec_command(artifact / "model.onnx", out / "model.engine", profile_shapes(manifest, opts.tile, opts.max_batch), opts)
