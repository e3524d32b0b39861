"""Everything that differs between TensorRT 10.3 (JetPack 6), 10.16 (JetPack 7.2) and 11.x,
and between the two CUDA bindings, lives here, so the builder and the runner stay plain.

Nothing here imports tensorrt or a CUDA binding at module import time: ``import tdpcr_edge``
works on machines without either, and the functions that need them raise one clear error
saying what to install.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError, EngineMismatch, MissingDependency, RunFailed

TRT_INSTALL_HINT = (
    "install TensorRT's Python bindings: on x86 `pip install tensorrt-cu12` (or tensorrt-cu13); "
    "on Jetson they come with JetPack (`sudo apt install python3-libnvinfer`)"
)
CUDA_INSTALL_HINT = "install cuda-python (`pip install cuda-python`) or pycuda"


def import_tensorrt():
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise MissingDependency(f"tensorrt is not installed ({exc}); {TRT_INSTALL_HINT}") from exc


def parse_version(text: str) -> tuple[int, ...]:
    """'10.3.0.30' -> (10, 3, 0, 30); non-numeric tails ('11.1.0b1') are cut."""
    parts = []
    for p in str(text).split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def same_release(a: str, b: str) -> bool:
    """Engines are tied to a TensorRT major.minor (we never build version-compatible engines)."""
    return parse_version(a)[:2] == parse_version(b)[:2]


def in_range(version: str, low: str, high: str) -> bool:
    v = parse_version(version)[:2]
    return parse_version(low)[:2] <= v <= parse_version(high)[:2]


def network_flags(trt) -> int:
    """Strongly typed networks: precision comes from the ONNX (casts, Q/DQ). TensorRT 10
    needs the flag; 11 removed it because strong typing is its only mode."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def set_workspace(config, trt, megabytes: int) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, megabytes << 20)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    sm: str  # "8.7"
    memory_mb: int | None = None


def detect_gpus() -> list[GpuInfo]:
    """GPUs as nvidia-smi, the CUDA bindings or torch see them (first that answers)."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            gpus = []
            for line in out.stdout.strip().splitlines():
                name, cap, mem = [x.strip() for x in line.split(",")]
                gpus.append(GpuInfo(name, cap, int(float(mem)) if mem.replace(".", "").isdigit() else None))
            if gpus:
                return gpus
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    try:
        import torch

        if torch.cuda.is_available():
            return [
                GpuInfo(
                    torch.cuda.get_device_name(i),
                    "%d.%d" % torch.cuda.get_device_capability(i),
                    torch.cuda.get_device_properties(i).total_memory >> 20,
                )
                for i in range(torch.cuda.device_count())
            ]
    except ImportError:
        pass
    return []


def cuda_binding() -> str | None:
    """'cuda-python' or 'pycuda', whichever is importable (cuda-python first, as NVIDIA's
    own samples use it now), else None."""
    for name, module in (("cuda-python", "cuda.bindings.runtime"), ("pycuda", "pycuda.driver")):
        try:
            importlib.import_module(module)
            return name
        except ImportError:
            continue
    return None


class CudaApi:
    """The few CUDA runtime calls the TensorRT runner makes, over cuda-python or pycuda."""

    def __init__(self, binding: str | None = None):
        self.binding = binding or cuda_binding()
        if self.binding is None:
            raise MissingDependency(f"no CUDA Python binding found; {CUDA_INSTALL_HINT}")
        if self.binding == "cuda-python":
            from cuda.bindings import runtime as cudart

            self.rt = cudart
        else:
            import pycuda.autoinit  # noqa: F401  (creates the context)
            import pycuda.driver as drv

            self.drv = drv

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RunFailed(f"CUDA error {err}; check the device with `tdpcr-edge doctor` and nvidia-smi")
        return rest[0] if len(rest) == 1 else rest

    def stream(self):
        return self._check(self.rt.cudaStreamCreate()) if self.binding == "cuda-python" else self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream) if self.binding == "cuda-python" else stream.handle

    def malloc(self, nbytes: int):
        return self._check(self.rt.cudaMalloc(nbytes)) if self.binding == "cuda-python" else self.drv.mem_alloc(nbytes)

    def ptr(self, buffer) -> int:
        return int(buffer)

    def free(self, buffer) -> None:
        if self.binding == "cuda-python":
            self._check(self.rt.cudaFree(buffer))
        else:
            buffer.free()

    def h2d(self, dst, host, stream) -> None:
        if self.binding == "cuda-python":
            kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._check(self.rt.cudaMemcpyAsync(dst, host.ctypes.data, host.nbytes, kind, stream))
        else:
            self.drv.memcpy_htod_async(dst, host, stream)

    def d2h(self, host, src, stream) -> None:
        if self.binding == "cuda-python":
            kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, src, host.nbytes, kind, stream))
        else:
            self.drv.memcpy_dtoh_async(host, src, stream)

    def synchronize(self, stream) -> None:
        if self.binding == "cuda-python":
            self._check(self.rt.cudaStreamSynchronize(stream))
        else:
            stream.synchronize()

    def event(self):
        return self._check(self.rt.cudaEventCreate()) if self.binding == "cuda-python" else self.drv.Event()

    def record(self, event, stream) -> None:
        if self.binding == "cuda-python":
            self._check(self.rt.cudaEventRecord(event, stream))
        else:
            event.record(stream)

    def elapsed_ms(self, start, end) -> float:
        if self.binding == "cuda-python":
            return float(self._check(self.rt.cudaEventElapsedTime(start, end)))
        return float(start.time_till(end))

    def begin_capture(self, stream) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self.rt.cudaStreamBeginCapture(stream, mode))

    def end_capture(self, stream):
        graph = self._check(self.rt.cudaStreamEndCapture(stream))
        return self._check(self.rt.cudaGraphInstantiate(graph, 0))

    def launch_graph(self, graph_exec, stream) -> None:
        self._check(self.rt.cudaGraphLaunch(graph_exec, stream))


def check_engine_compat(
    record: dict, trt_version: str, gpu_name: str, gpu_sm: str, plugin_sha256: str | None = None, where: str = "engine"
) -> None:
    """Refuse, before deserialising, an engine this device cannot run: one line naming both
    sides and the fix. TensorRT engines are tied to the TensorRT release and the GPU."""
    built = f"TensorRT {record['tensorrt']} on {record['gpu']['name']} (SM {record['gpu']['sm']})"
    here = f"TensorRT {trt_version} on {gpu_name} (SM {gpu_sm})"
    fix = "rebuild it on this device with `tdpcr-edge build-engine`"
    if not same_release(record["tensorrt"], trt_version):
        raise EngineMismatch(f"{where}: built with {built}, but this is {here}; {fix}")
    if str(record["gpu"]["sm"]) != str(gpu_sm):
        raise EngineMismatch(f"{where}: built for {built}, but this GPU is {here}; {fix}")
    if record["plugin"]["used"]:
        if plugin_sha256 is None:
            raise EngineMismatch(
                f"{where}: needs the TDP_PGF plugin library, which was not found; pass --plugin-lib or build it with `make kernels`"
            )
        if plugin_sha256 != record["plugin"]["sha256"]:
            raise EngineMismatch(
                f"{where}: built with another TDP_PGF plugin library (sha256 {record['plugin']['sha256'][:12]}, found "
                f"{plugin_sha256[:12]}); {fix}"
            )


def find_plugin_library(explicit: str | Path | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"{path}: plugin library not found; build it with `make kernels TRT_INCLUDE=...`")
        return path
    from ...model.libraries import find_library

    return find_library("plugin")
