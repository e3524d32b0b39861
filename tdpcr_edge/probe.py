"""Platform probes, the one leaf that knows the machine: the CPU model and the instruction-set
extensions that decide which CPU rows are fast (INT8 needs VNNI or AMX to outrun FP32 by much,
BF16 needs AVX512_BF16 or AMX to be computed rather than emulated), the cores this process may
use, GPUs, and the device record every measured figure carries. Imports nothing heavy: torch
is asked only when it is installed."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# (label, cpuinfo flags any of which provides it), in the order doctor prints them.
X86_FEATURES = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("VNNI", ("avx512_vnni", "avx_vnni")),
    ("AVX512_BF16", ("avx512_bf16",)),
    ("AMX", ("amx_bf16", "amx_int8", "amx_tile")),
)
ARM_FEATURES = (
    ("NEON", ("asimd",)),
    ("DOTPROD", ("asimddp",)),
    ("I8MM", ("i8mm",)),
    ("BF16", ("bf16",)),
    ("SVE", ("sve",)),
)


# oneDNN's ISA cap (ONEDNN_MAX_CPU_ISA, honoured by torch's and OpenVINO's oneDNN): the
# features each level allows, to see on one machine what a CPU without the rest would get.
ISA_CAPS = {
    "SSE41": (),
    "AVX": (),
    "AVX2": ("AVX2",),
    "AVX2_VNNI": ("AVX2", "VNNI"),
    "AVX2_VNNI_2": ("AVX2", "VNNI"),
    "AVX512_CORE": ("AVX2", "AVX-512"),
    "AVX512_CORE_VNNI": ("AVX2", "AVX-512", "VNNI"),
    "AVX512_CORE_BF16": ("AVX2", "AVX-512", "VNNI", "AVX512_BF16"),
    "AVX512_CORE_FP16": ("AVX2", "AVX-512", "VNNI", "AVX512_BF16"),
    "AVX512_CORE_AMX": ("AVX2", "AVX-512", "VNNI", "AVX512_BF16", "AMX"),
}


def isa_cap() -> str | None:
    """The oneDNN ISA cap in force (upper case), or None."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap and cap.strip().upper() not in ("ALL", "DEFAULT") else None


@dataclass(frozen=True)
class CpuIsa:
    model: str
    machine: str
    flags: frozenset[str]

    def has(self, feature: str) -> bool:
        """``feature`` is a label of X86_FEATURES / ARM_FEATURES (AVX2, VNNI, AMX, ...)."""
        for label, flags in X86_FEATURES + ARM_FEATURES:
            if label.lower() == feature.lower():
                return bool(self.flags & set(flags))
        from .errors import UnknownName

        raise UnknownName(f"unknown ISA feature {feature!r}: choose one of {', '.join(label for label, _ in X86_FEATURES + ARM_FEATURES)}")

    @property
    def features(self) -> dict[str, bool]:
        table = ARM_FEATURES if self.machine in ("aarch64", "arm64") else X86_FEATURES
        return {label: bool(self.flags & set(flags)) for label, flags in table}

    @property
    def native_bf16(self) -> bool:
        """BF16 arithmetic in hardware: AMX or AVX512_BF16 on x86, the BF16 extension on Arm."""
        if self.machine in ("aarch64", "arm64"):
            return self.has("BF16")
        return self.has("AMX") or self.has("AVX512_BF16")

    @property
    def int8_dot(self) -> bool:
        """An INT8 dot-product instruction (VNNI or AMX on x86, DOTPROD on Arm)."""
        if self.machine in ("aarch64", "arm64"):
            return self.has("DOTPROD")
        return self.has("VNNI") or self.has("AMX")

    def summary(self) -> str:
        have = [k for k, v in self.features.items() if v]
        return ", ".join(have) if have else "none of " + ", ".join(self.features)

    def to_dict(self) -> dict:
        return {"model": self.model, "machine": self.machine, "features": self.features}


def _read_cpuinfo() -> tuple[str, set[str]]:
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


@lru_cache(maxsize=1)
def cpu_isa() -> CpuIsa:
    """This machine's CPU (Linux /proc/cpuinfo; elsewhere the model only, no flags), less
    what an ONEDNN_MAX_CPU_ISA cap forbids."""
    model, flags = _read_cpuinfo()
    cap = isa_cap()
    if cap in ISA_CAPS:
        allowed = {f for label, fs in X86_FEATURES if label in ISA_CAPS[cap] for f in fs}
        every = {f for _, fs in X86_FEATURES for f in fs}
        flags = {f for f in flags if f not in every or f in allowed}
    return CpuIsa(model or platform.processor() or platform.machine(), platform.machine().lower(), frozenset(flags))


def cpu_cores() -> int:
    """Cores this process may run on: its affinity mask (which containers and taskset narrow),
    capped by OMP_NUM_THREADS when set (Ray sets it to an actor's CPU share)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(omp)) if omp.isdigit() and int(omp) > 0 else cores


def cuda_available() -> bool:
    """A CUDA device torch can use; False where torch is not installed (a runtime install)."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def cpu_name() -> str:
    return cpu_isa().model


def device_info() -> dict:
    """What the figures were measured on: CPU and its ISA, cores, GPU, Jetson model when present."""
    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "machine": platform.machine(), "isa": cpu_isa().features}
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if capped:
        info["isa_cap"] = f"ONEDNN_MAX_CPU_ISA={capped} (oneDNN in torch and OpenVINO; ONNX Runtime's MLAS ignores it)"
    if cuda_available():
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    jetson = Path("/proc/device-tree/model")
    if jetson.exists():
        info["board"] = jetson.read_text(errors="replace").strip("\x00\n ")
    return info


def device_label(info: dict) -> str:
    if info.get("board") or info.get("gpu"):
        return info.get("board") or info.get("gpu")
    isa = [k for k, v in (info.get("isa") or {}).items() if v]
    cap = f", capped: {info['isa_cap'].split(' ')[0]}" if info.get("isa_cap") else ""
    return f"{info['cpu']}, {info['cores']} cores" + (f" ({', '.join(isa)}{cap})" if isa else "")
