"""`tdpcr-edge doctor`: what this machine has for each step of the pipeline. Every probe is
guarded: a missing library is a row that says so, never a crash."""

from __future__ import annotations

import ctypes
import importlib
import os
import platform
from dataclasses import dataclass
from importlib import metadata

from .errors import INSTALL


@dataclass
class Row:
    item: str
    status: str  # "ok", "missing", "info"
    detail: str


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def diagnose() -> list[Row]:
    from .backends.targets import list_profiles
    from .backends.trt.compat import cuda_binding, detect_gpus
    from .backends.trt.engine import match_profile
    from .model.libraries import LIB_NAMES, find_library, search_dirs

    rows = [Row("python", "info", f"{platform.python_version()} on {platform.machine()}")]
    rows += backend_rows()
    rows += cpu_rows()
    try:
        import torch

        cuda = f"CUDA {torch.version.cuda}, device available: {torch.cuda.is_available()}" if torch.version.cuda else "CPU build"
        rows.append(Row("torch", "ok", f"{torch.__version__} ({cuda})"))
    except ImportError:
        rows.append(Row("torch", "missing", "needed for training, eval and the torch backend"))
    try:
        ort = importlib.import_module("onnxruntime")
        rows.append(Row("onnxruntime", "ok", f"{ort.__version__}, providers: {', '.join(ort.get_available_providers())}"))
    except ImportError:
        rows.append(Row("onnxruntime", "missing", "pip install 'tdpcr-edge[export]'"))
    try:
        ov = importlib.import_module("openvino")
        devices = ", ".join(ov.Core().available_devices)
        rows.append(Row("openvino", "ok", f"{ov.__version__.split('-')[0]}, devices: {devices}"))
    except ImportError:
        rows.append(Row("openvino", "missing", f"the openvino backend (fastest on most CPUs): {INSTALL['openvino']}"))
    for dist in ("onnx", "onnxsim", "onnxscript", "onnxconverter-common", "onnxruntime-extensions"):
        v = _version(dist)
        rows.append(Row(dist, "ok" if v else "missing", v or "pip install 'tdpcr-edge[export]'"))
    trt_version = None
    try:
        trt = importlib.import_module("tensorrt")
        trt_version = trt.__version__
        rows.append(Row("tensorrt", "ok", trt_version))
    except ImportError:
        rows.append(Row("tensorrt", "missing", "needed for build-engine and the trt backend (JetPack, or pip install tensorrt-cu12)"))
    binding = cuda_binding()
    rows.append(Row("CUDA Python binding", "ok" if binding else "missing", binding or "pip install cuda-python (or pycuda)"))
    gpus = detect_gpus()
    if gpus:
        for i, g in enumerate(gpus):
            mem = f", {g.memory_mb} MiB" if g.memory_mb else ""
            rows.append(Row(f"GPU {i}", "ok", f"{g.name}, SM {g.sm}{mem}"))
    else:
        rows.append(Row("GPU", "missing", "no CUDA GPU visible (nvidia-smi, torch)"))
    for kind in ("host", "cuda", "plugin"):
        path = find_library(kind)
        if path is None:
            rows.append(Row(LIB_NAMES[kind], "missing", f"not in {', '.join(map(str, search_dirs()))}; run `make kernels`"))
            continue
        try:
            ctypes.CDLL(str(path))
            rows.append(Row(LIB_NAMES[kind], "ok", f"{path} (loads)"))
        except OSError as exc:
            rows.append(Row(LIB_NAMES[kind], "missing", f"{path} does not load: {exc}"))
    if gpus:
        profile = match_profile(gpus[0].sm, trt_version, list_profiles())
        rows.append(
            Row(
                "target profile",
                "ok" if profile else "missing",
                profile.name if profile else f"no profile for SM {gpus[0].sm} and TensorRT {trt_version or '-'}",
            )
        )
    else:
        rows.append(Row("target profile", "info", "no GPU, so no device profile applies"))
    return rows


def backend_rows() -> list[Row]:
    """One row per registered backend (backends.registry): installed or the pip line, what it
    runs, on which devices, and how the scene stream calls it."""
    from .backends import registry as backends
    from .stream.options import default_workers

    rows = []
    for b in backends.REGISTRY.values():
        if not b.user_facing:
            continue
        why = b.missing()
        detail = f"runs {'an' if b.reads[0] in 'aeiou' else 'a'} {b.reads} on {', '.join(b.devices)}; {b.description}"
        if b.stream:
            detail += f"; in a scene stream ({default_workers()} inference workers on CPU backends here): {b.stream}"
        rows.append(Row(f"backend {b.name}", "missing" if why else "ok", f"{why}; {detail}" if why else detail))
    return rows


def fast_cpu_rows(isa) -> list[str]:
    """Which CPU rows gain on this ISA and which do not, and why, from what bench measured
    (docs/benchmarks.md): one line each."""
    lines = []
    if isa.has("AMX"):
        lines.append("openvino bf16 (AMX tiles): fastest measured on Xeon")
    elif isa.native_bf16:
        lines.append("openvino bf16 (AVX512_BF16, no AMX): faster than f32, slower than INT8 here")
    else:
        lines.append("bf16: not native on this CPU, skipped")
    if isa.int8_dot:
        lines.append("openvino int8 (VNNI/AMX integer dot products)")
    elif isa.has("AVX2"):
        lines.append(
            "openvino int8 placed cpu-no-vnni (no VNNI: u8 x s8 pairs sum into saturating 16 bits, which the cpu placement "
            "overflows and cpu-no-vnni cannot; measured on AVX2: within budget, faster than f32; docs/cpu.md)"
        )
    else:
        lines.append("int8: no AVX2 or INT8 dot product, not measured here; fp32")
    lines.append("ort int8: slower than ort fp32 on every CPU measured (its convolutions run in float; docs/benchmarks.md)")
    return lines


def profile_pick(profile, isa) -> str:
    """What a CPU profile picks on ``isa``: backend, precision and why; the INT8 placement
    too where that row has its own (not the profile's default)."""
    from . import precisions

    precision, why = profile.precision_for(isa)
    placement = profile.int8_placement_for(isa)
    if precisions.get(precision).calibrated and placement != profile.default_int8_placement:
        return f"{profile.backend} {precision}, placement {placement} ({why}; the profile's default is {profile.default_int8_placement})"
    return f"{profile.backend} {precision} ({why})"


def cpu_rows() -> list[Row]:
    from .backends.targets import list_profiles, load_profile
    from .probe import cpu_isa

    isa = cpu_isa()
    rows = [
        Row("CPU", "info", f"{isa.model}, {os.cpu_count()} cores"),
        Row("CPU ISA", "info", ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in isa.features.items())),
        Row("fast CPU rows here", "info", "; ".join(fast_cpu_rows(isa))),
    ]
    for name in list_profiles("cpu"):
        rows.append(Row(f"profile {name}", "info", profile_pick(load_profile(name), isa)))
    return rows
