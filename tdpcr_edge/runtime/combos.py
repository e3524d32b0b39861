"""One registry of the (backend, precision, variant) combinations the toolkit can run.

``tdpcr-edge bench``, the pytest-benchmark suite and the report all read this table, so a
new way of running the model is one row here (as Ultralytics keeps one table of export
formats for both export and benchmark). Each row knows what it needs; ``unavailable``
says, in one line, why a row cannot run on this machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass

from ..errors import ConfigError
from .cpu_isa import cpu_isa, isa_cap
from .runner import BACKENDS

# Artifact precisions. bf16 is the FP32 graph computed in BF16 by OpenVINO on CPUs that do
# BF16 natively: a precision of the artifact (its drift is gated as it runs), not a flag.
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "mixed")
GRAPH_PRECISIONS = ("fp32", "fp16", "int8", "mixed")  # what ONNX Runtime and TensorRT run


@dataclass(frozen=True)
class Combo:
    backend: str  # torch | ort | openvino | trt
    precision: str  # fp32 | fp16 | bf16 | int8 | mixed
    variant: str = ""  # torch: eager | compile | fused; openvino: default (OpenVINO's own settings)
    device: str = "cpu"  # cpu | cuda

    @property
    def name(self) -> str:
        parts = [self.backend, self.precision] + ([self.variant] if self.variant else []) + ([self.device] if self.backend == "torch" else [])
        return "-".join(parts)

    @property
    def needs_artifact(self) -> bool:
        """ONNX Runtime, OpenVINO and TensorRT run an exported artifact of this precision."""
        return self.backend in ("ort", "openvino", "trt")


COMBOS: tuple[Combo, ...] = (
    Combo("torch", "fp32", "eager", "cpu"),
    Combo("torch", "fp32", "compile", "cpu"),
    Combo("torch", "fp32", "eager", "cuda"),
    Combo("torch", "fp16", "eager", "cuda"),
    Combo("torch", "fp32", "compile", "cuda"),
    Combo("torch", "fp32", "fused", "cuda"),
    *(Combo("ort", p) for p in GRAPH_PRECISIONS),
    # The FP32 graph as a user would load it into OpenVINO, changing nothing: the peer to beat.
    Combo("openvino", "fp32", "default"),
    *(Combo("openvino", p) for p in PRECISIONS),
    *(Combo("trt", p, device="cuda") for p in GRAPH_PRECISIONS),
)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def unavailable(combo: Combo) -> str | None:
    """None when ``combo`` can run here, else the reason in one line."""
    if combo.device == "cuda" and combo.backend == "torch" and not cuda_available():
        return "no CUDA GPU on this machine"
    if combo.variant == "fused":
        from ..model.fused import LIB_NAMES, find_library

        if find_library("cuda") is None:
            return f"{LIB_NAMES['cuda']} not built (make kernels)"
    if combo.variant == "compile" and combo.device == "cuda" and not _has("triton"):
        return "torch.compile on CUDA needs triton, which is not installed"
    if combo.variant == "compile" and combo.device == "cpu" and not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        return "torch.compile on the CPU needs a C++ compiler (g++), which is not on PATH"
    if combo.backend == "ort" and not _has("onnxruntime"):
        return "onnxruntime is not installed (pip install -e '.[export]')"
    if combo.backend == "ort" and isa_cap():
        return f"ONNX Runtime's kernels ignore ONEDNN_MAX_CPU_ISA={isa_cap()}: its figures would be this CPU's full ISA's"
    if combo.variant == "default" and isa_cap():
        return f"OpenVINO's defaults follow the CPU's own flags, not ONEDNN_MAX_CPU_ISA={isa_cap()}"
    if combo.backend == "openvino":
        if not _has("openvino"):
            return "openvino is not installed (pip install 'openvino>=2026.4,<2027')"
        if combo.precision == "bf16" and not cpu_isa().native_bf16:
            return f"this CPU computes BF16 natively with neither AMX nor AVX512_BF16 (it has {cpu_isa().summary()}); OpenVINO would emulate it"
    if combo.backend == "trt":
        if not _has("tensorrt"):
            return "TensorRT is not installed (JetPack's python3-libnvinfer, or pip install -e '.[trt]')"
        if not (_has("cuda") or _has("pycuda")):
            return "neither cuda-python nor pycuda is installed for TensorRT's buffers"
    return None


def _split(text: str | list[str] | tuple[str, ...], allowed: tuple[str, ...], what: str) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise ConfigError(f"unknown {what} {', '.join(bad) or '(none)'}: choose from {', '.join(allowed)}, comma-separated")
    return items


def select(backends: str | list[str] = "torch,ort,openvino,trt", precisions: str | list[str] = "fp32,fp16,bf16,int8,mixed") -> list[Combo]:
    """The registry rows for these backends and precisions, in registry order."""
    b = _split(backends, BACKENDS, "backend")
    p = _split(precisions, PRECISIONS, "precision")
    return [c for c in COMBOS if c.backend in b and c.precision in p]
