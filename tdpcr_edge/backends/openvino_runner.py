"""OpenVINO backend for CPUs: reads an artifact's model.onnx as exported (FP32, FP16, INT8
Q/DQ, mixed) and compiles it for the CPU plugin. A folder whose manifest says ``format:
openvino-ir`` holds an OpenVINO IR (model.xml + model.bin) instead: NNCF's INT8 of our FP32
graph, which bench makes for its peer row ``openvino int8 nncf`` (``export.nncf_peer``).

The inference precision is always set, never left to OpenVINO: on CPUs with AMX or
AVX512_BF16 its default runs FP32 graphs in BF16, and the drift gate must measure what
runs. ``f32`` computes the graph as written; ``bf16`` (a ``bf16`` artifact: the FP32 graph
run in BF16) needs a CPU that computes BF16 natively. ``None`` is OpenVINO's own default,
kept for the report's peer row ("what a user gets by loading our FP32 graph unchanged").

Compiled models are cached (OpenVINO's model cache, keyed by graph, precision and device),
so a second start skips compilation. openvino is imported on activation only: the package
imports without it; onnx only for a graph given in memory or to explain a refusal, because
its import is a noticeable part of a CLI stream's start (docs/cpu.md#the-openvino-backend)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..contract import OUTPUTS
from ..errors import INSTALL as EXTRAS
from ..errors import CheckpointError, ConfigError, MissingDependency
from ..io_utils import user_cache
from ..probe import cpu_cores, cpu_isa
from .runner import Runner
from .signal_stack import kept_signal_stack

if TYPE_CHECKING:
    import onnx

INFERENCE_PRECISIONS = ("f32", "bf16")
INSTALL = EXTRAS["openvino"]
IR_FORMAT = "openvino-ir"  # manifest "format" of a folder holding model.xml + model.bin
NNCF_VARIANT = "nncf"  # the bench row running NNCF's INT8 IR (export.nncf_peer makes it)
NNCF_INSTALL = EXTRAS["nncf"]


def cache_dir() -> Path:
    """Where compiled models are cached: $TDPCR_OPENVINO_CACHE, else the user's cache folder."""
    env = os.environ.get("TDPCR_OPENVINO_CACHE")
    if env:
        return Path(env)
    return user_cache("openvino")


def import_openvino():
    try:
        import openvino
    except ImportError as exc:
        raise MissingDependency(f"the openvino backend needs OpenVINO, which is not installed ({exc}); {INSTALL}") from None
    return openvino


def check_inference_precision(precision: str | None) -> None:
    if precision is None:
        return
    if precision not in INFERENCE_PRECISIONS:
        raise ConfigError(f"unknown OpenVINO inference precision {precision!r}: choose one of {', '.join(INFERENCE_PRECISIONS)}")
    if precision == "bf16" and not cpu_isa().native_bf16:
        isa = cpu_isa()
        raise ConfigError(
            f"BF16 needs a CPU that computes it natively (AMX or AVX512_BF16 on x86, BF16 on Arm); this {isa.model} has {isa.summary()}: "
            "run the fp32 or int8 artifact instead"
        )


# OpenVINO's Python binding initialises a C++ static on the first Tensor.data of the process,
# letting go of the GIL inside; a second thread that reaches it then, holding the GIL,
# deadlocks both (seen as a scene stream whose two inference workers stopped at their first
# tile). Each thread's first call goes through this lock; a thread waiting on it lets go of
# the GIL.
FIRST_CALL = threading.Lock()


class OpenVinoRunner(Runner):
    name = "openvino"
    activates_on_any_thread = True  # a compiled model serves calls from any thread

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        config: dict,
        inference_precision: str | None = "f32",
        threads: int | None = None,
        cache: str | Path | None = None,
        device: str = "CPU",
    ):
        """``model``: an .onnx path, an OpenVINO IR's .xml path (its .bin beside it) or a
        model proto; ``config``: the model config dict
        (manifest["model"]); ``inference_precision``: f32, bf16, or None for OpenVINO's
        default; ``cache``: the model-cache folder (default ``cache_dir()``), or "" for none."""
        super().__init__(2 ** (len(config["widths"]) - 1), config["optical_bands"], config["sar_bands"])
        check_inference_precision(inference_precision)
        self.model = model
        self.inference_precision = inference_precision
        self.threads = threads
        self.streams = 1
        self.cache = cache_dir() if cache is None else (Path(cache) if cache else None)
        self.device = device
        self.compiled = None
        self._local = threading.local()
        self.compile_s: float | None = None  # compile or cache load, seconds
        self.loaded_from_cache = False

    def share_cpu(self, workers: int) -> int:
        # One compiled model serves concurrent calls through one infer request per thread;
        # OpenVINO gives each stream its share of the cores.
        self.streams = max(1, workers)
        self.threads = cpu_cores()
        self.deactivate()
        return self.streams

    def compile_config(self) -> dict:
        if self.inference_precision is None and self.threads is None and self.streams == 1:
            return {}  # OpenVINO's defaults, untouched
        cfg = {"PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT", "NUM_STREAMS": str(self.streams)}
        if self.inference_precision is not None:
            cfg["INFERENCE_PRECISION_HINT"] = self.inference_precision
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = str(self.threads)
        return cfg

    def _read(self, core):
        """The graph as OpenVINO reads it: a file by its path (an .onnx, or an IR's .xml with
        its .bin; onnx is not imported), a proto in memory by its bytes."""
        if isinstance(self.model, (str, Path)):
            self.graph_outputs = list(OUTPUTS)
            path = Path(self.model)
            if path.suffix == ".xml":
                return _read_ir(core, path)
            if not path.is_file():
                raise CheckpointError(f"{path}: no ONNX model there; export the artifact again")
            try:
                return core.read_model(str(path))
            except RuntimeError as exc:
                self._refuse(_load_onnx(path), str(path), exc)
        self._refuse(self.model, "the graph", None)
        self.graph_outputs = [o.name for o in self.model.graph.output]
        return core.read_model(self.model.SerializeToString(), b"")

    @staticmethod
    def _refuse(proto, where: str, exc: Exception | None) -> None:
        from .tdp_pgf_op import has_plugin_nodes

        if has_plugin_nodes(proto):
            raise ConfigError(
                f"{where}: has TDP_PGF plugin nodes, which only TensorRT and ONNX Runtime run; export it again without --plugin for "
                "OpenVINO"
            )
        if exc is not None:
            raise exc

    def activate_impl(self) -> None:
        with kept_signal_stack():  # see backends.signal_stack: OpenVINO's CPU plugin replaces it
            self._activate()

    def _activate(self) -> None:
        import time

        ov = import_openvino()
        core = ov.Core()
        if self.cache is not None:
            try:
                self.cache.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(self.cache)})
            except OSError:
                pass  # a read-only home: compile every time rather than fail
        start = time.perf_counter()
        where = str(self.model) if isinstance(self.model, (str, Path)) else "the graph"
        try:
            self.compiled = core.compile_model(self._read(core), self.device, self.compile_config())
        except RuntimeError as exc:
            raise CheckpointError(
                f"{where}: OpenVINO {ov.__version__} cannot compile this graph ({_reason(exc)}); "
                "run it with --backend ort, or export it again with this tdpcr-edge"
            ) from None
        self.compile_s = time.perf_counter() - start
        try:
            self.loaded_from_cache = bool(self.compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:
            self.loaded_from_cache = False
        # A port can carry several tensor names (an FP16 graph's output cast keeps the inner
        # name too); key the results by the graph's own output names.
        self.outputs = [
            (port, next((n for n in port.get_names() if n in self.graph_outputs), port.get_any_name())) for port in self.compiled.outputs
        ]
        self._local = threading.local()

    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        req = getattr(self._local, "request", None)
        if req is not None:
            result = req.infer({"optical": optical, "sar": sar})
        else:
            req = self._local.request = self.compiled.create_infer_request()
            with FIRST_CALL:
                result = req.infer({"optical": optical, "sar": sar})
        # The request reuses its output buffers on the next call: copy.
        return {name: np.array(result[port], copy=True) for port, name in self.outputs}

    def deactivate_impl(self) -> None:
        import gc

        with kept_signal_stack():
            self.compiled = None
            self._local = threading.local()
            gc.collect()  # the compiled model is destroyed here, inside the guard, not at a later collection


def _read_ir(core, xml: Path):
    """An OpenVINO IR: model.xml, its weights in model.bin beside it."""
    for f in (xml, xml.with_suffix(".bin")):
        if not f.is_file():
            raise CheckpointError(f"{f}: missing; make the OpenVINO IR again (tdpcr-edge bench remakes NNCF's)")
    try:
        return core.read_model(str(xml), str(xml.with_suffix(".bin")))
    except RuntimeError as exc:
        raise CheckpointError(f"{xml}: not an OpenVINO IR this OpenVINO reads ({_reason(exc)}); make it again") from None


def _reason(exc: Exception) -> str:
    """The most telling line of an OpenVINO exception (they span a dozen lines of C++ frames)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for marker in ("No conversion rule", "Check '", "FrontEnd API failed", "Exception"):
        for ln in lines:
            if ln.startswith(marker) or marker in ln and "src/" not in ln:
                return ln[:200]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def load(
    path: Path, manifest: dict, *, variant: str = "", device: str | None = None, precision: str | None = None, **kwargs
) -> OpenVinoRunner:
    """The registry's entry point: an artifact folder, computed as its precision says. The
    ``default`` variant is the FP32 graph as OpenVINO runs it untouched, with no model cache,
    as a first-time user has none. The ``nncf`` variant runs NNCF's INT8 IR (a folder of
    ``format: openvino-ir``), computed as our INT8 artifact is (f32 inference precision, the
    same hints and model cache), so the two rows differ by the quantiser alone."""
    from .. import precisions

    ir = manifest.get("format") == IR_FORMAT
    if variant == NNCF_VARIANT and not ir:
        raise ConfigError(
            f"{path}: the openvino int8 nncf row runs NNCF's OpenVINO IR (a folder bench makes, ARTIFACTS/int8-nncf), "
            f"not an exported {manifest['precision']} artifact"
        )
    if variant == "default":
        kwargs.update(inference_precision=None, cache="")
    kwargs.setdefault("inference_precision", precisions.get(manifest["precision"]).inference_precision("openvino"))
    return OpenVinoRunner(Path(path) / ("model.xml" if ir else "model.onnx"), manifest["model"], **kwargs)


def _load_onnx(path: Path) -> onnx.ModelProto:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0]}); export the artifact again") from exc


def load_graph(proto: onnx.ModelProto, config: dict, precision: str) -> OpenVinoRunner:
    """An in-memory graph computed as the artifact will be. No model cache: the mixed search
    compiles many graphs that are never run again."""
    from .. import precisions

    return OpenVinoRunner(proto, config, inference_precision=precisions.get(precision).inference_precision("openvino"), cache="")


def unavailable(combo) -> str | None:
    from ..probe import isa_cap
    from .registry import has_module

    if combo.variant == "default" and isa_cap():
        return f"OpenVINO's defaults follow the CPU's own flags, not ONEDNN_MAX_CPU_ISA={isa_cap()}"
    if combo.variant == NNCF_VARIANT and not has_module("nncf"):
        return f"nncf is not installed ({NNCF_INSTALL})"
    return None
