"""The backend registry: one row per runtime backend. The runner factory, bench, export's drift
gate, the scene stream, doctor, the CLI's choices and help, and the benchmark suites all read
it; nobody keeps a second list. Adding a backend is its runner module plus one row here (or
one ``register`` call, as tests/backends/test_backends.py does with a toy backend).

A runner module named by a row provides:

    load(path, manifest, *, variant="", device=None, precision=None, **kwargs) -> Runner
        ``path`` is what the row ``reads`` (a checkpoint file, an artifact folder, an engine
        folder), ``manifest`` the artifact's manifest (None for checkpoints and engines).
    load_graph(proto, config, precision) -> Runner     (rows that gate drift: an in-memory graph)
    unavailable(combo) -> str | None                   (optional: why a bench row cannot run here)

Modules are imported only when a runner is made, so the package imports without any of the
optional runtimes.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

from ..errors import INSTALL, ConfigError, MissingDependency

READS = ("checkpoint", "artifact", "engine")


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # runner module, imported lazily
    reads: str  # what it runs: checkpoint | artifact | engine
    requires: tuple[str, ...]  # Python modules it needs
    label: str  # how the library is named in "X is not installed"
    pip: str  # the line that installs them
    devices: tuple[str, ...]  # cpu, cuda
    gates_drift: bool  # export can measure an artifact's drift on it
    metadata: str  # where a stream reads the model's metadata: checkpoint | manifest.json | engine.json
    description: str
    # Bench rows (precision, variant, device). None: one row per precision the precision
    # registry lets it run, on its first device. ``extra_rows`` come first in either case.
    rows: tuple[tuple[str, str, str], ...] | None = None
    extra_rows: tuple[tuple[str, str, str], ...] = ()
    user_facing: bool = True  # offered by the CLI (replay is for benchmarks and tests only)
    stream: str = ""  # how the scene stream calls it (what doctor says)

    def missing(self) -> str | None:
        """Why this backend cannot be imported here, in one line, or None."""
        for mod in self.requires:
            if not has_module(mod):
                return f"{self.label} is not installed ({self.pip})"
        return None

    def runner_module(self) -> ModuleType:
        """The runner module. Runner modules import their library lazily where they can (the
        TensorRT runner reads engine.json without TensorRT and names what to install when it
        activates); one that cannot be imported at all is one line with the pip line."""
        try:
            return importlib.import_module(self.module)
        except MissingDependency:
            raise
        except ImportError as exc:
            raise MissingDependency(
                f"the {self.name} backend needs {exc.name or exc}: {self.label} is not installed ({self.pip})"
            ) from None


def has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "torch",
            "tdpcr_edge.backends.torch_runner",
            "checkpoint",
            ("torch",),
            "torch",
            INSTALL["torch"],
            ("cpu", "cuda"),
            False,
            "checkpoint",
            "PyTorch on the checkpoint (eager, torch.compile, the fused CUDA kernel)",
            rows=(
                ("fp32", "eager", "cpu"),
                ("fp32", "compile", "cpu"),
                ("fp32", "eager", "cuda"),
                ("fp16", "eager", "cuda"),
                ("fp32", "compile", "cuda"),
                ("fp32", "fused", "cuda"),
            ),
            stream="on the CPU, the inference workers split each batch, each with its share of torch's threads; on CUDA one call at a time",
        ),
        Backend(
            "ort",
            "tdpcr_edge.backends.ort_runner",
            "artifact",
            ("onnxruntime", "onnx"),
            "onnxruntime",
            INSTALL["onnxruntime"],
            ("cpu",),
            True,
            "manifest.json",
            "ONNX Runtime on the artifact's model.onnx",
            stream="the stream's inference workers each get a session's share of the cores (intra-op threads), which sleep between "
            "calls instead of spinning (ONNX Runtime's default), so an idle session leaves the reader and writer their cores",
        ),
        # The FP32 graph as a user would load it into OpenVINO, changing nothing: the peer to beat.
        # And NNCF's post-training INT8 of that graph at NNCF's defaults (when nncf is installed):
        # the peer of our INT8 export (export.nncf_peer makes its IR from the fp32 artifact).
        Backend(
            "openvino",
            "tdpcr_edge.backends.openvino_runner",
            "artifact",
            ("openvino", "onnx"),
            "openvino",
            INSTALL["openvino"],
            ("cpu",),
            True,
            "manifest.json",
            "OpenVINO on the artifact's model.onnx (f32, BF16, INT8; fastest on most CPUs)",
            stream="one compiled model, one OpenVINO stream and infer request per inference worker (THROUGHPUT hint; measured faster than "
            "one stream on every core)",
            extra_rows=(("fp32", "default", "cpu"), ("int8", "nncf", "cpu")),
        ),
        Backend(
            "trt",
            "tdpcr_edge.backends.trt.runner",
            "engine",
            ("tensorrt",),
            "TensorRT",
            INSTALL["tensorrt"],
            ("cuda",),
            False,
            "engine.json",
            "TensorRT on an engine built on the device (`tdpcr-edge build-engine`)",
            stream="one inference call at a time on the GPU while the CPU cores read, blend and write",
        ),
        # A stored output replayed at once: the scene pipeline's own ceiling (benchmarks, tests).
        Backend(
            "replay",
            "tdpcr_edge.backends.replay_runner",
            "artifact",
            ("numpy",),
            "numpy",
            "pip install numpy",
            ("cpu",),
            False,
            "manifest.json",
            "replays a stored model output at once: measures the scene pipeline alone",
            rows=(),
            user_facing=False,
        ),
    )
}


def names(user_facing: bool = True) -> tuple[str, ...]:
    """Registered backends (those the CLI offers, unless ``user_facing`` is False)."""
    return tuple(n for n, b in REGISTRY.items() if b.user_facing or not user_facing)


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}: choose one of auto, {', '.join(names())}") from None


def drift_backends() -> tuple[str, ...]:
    return tuple(n for n, b in REGISTRY.items() if b.gates_drift)


def first_reading(kind: str) -> Backend:
    """The first registered user backend that runs ``kind`` (what ``--backend auto`` picks for it)."""
    return next(b for b in REGISTRY.values() if b.reads == kind and b.user_facing)


def register(backend: Backend) -> None:
    if backend.reads not in READS:
        raise ConfigError(f"backend {backend.name}: reads {backend.reads!r}, not one of {', '.join(READS)}")
    REGISTRY[backend.name] = backend


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)
