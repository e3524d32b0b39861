"""PyTorch backend: the reference every other backend is measured against, and on a GPU
the eager FP32/FP16, torch.compile and fused-kernel variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..model.registry import outputs_of
from ..probe import cpu_cores
from ..train.checkpoint import load_checkpoint
from .runner import Runner


class TorchRunner(Runner):
    name = "torch"

    def __init__(
        self, checkpoint: str | Path | None = None, device: str = "cpu", half: bool = False, compile: bool = False, fused: bool = False
    ):
        self.checkpoint = load_checkpoint(checkpoint)
        c = self.checkpoint.config
        super().__init__(c.multiple, c.optical_bands, c.sar_bands)
        self.outputs = outputs_of(c)
        self.device = torch.device(device)
        if (half or fused) and self.device.type != "cuda":
            raise ConfigError("the torch backend runs FP16 and the fused PGF kernel on a CUDA device only; pass device='cuda'")
        self.half, self.compile, self.fused = half, compile, fused
        self.model = None
        self.threads: int | None = None  # None: torch's own setting
        self._saved_threads: int | None = None

    def share_cpu(self, workers: int) -> int:
        self.threads = None
        if self.device.type != "cpu" or workers < 2:
            return 1
        self.threads = max(1, cpu_cores() // workers)
        return workers

    def activate_impl(self) -> None:
        if self.device.type == "cpu":
            from .malloc import keep_freed_memory

            keep_freed_memory()
            if self.threads is not None:
                # Process-wide in torch, so restored on deactivate.
                self._saved_threads = torch.get_num_threads()
                torch.set_num_threads(self.threads)
        model = self.checkpoint.build().to(self.device)
        if self.fused:
            from ..model.fused import enable_fused

            enabled, reason = enable_fused(model)
            if not enabled:
                raise ConfigError(f"fused PGF kernel unavailable: {reason}")
        if self.half:
            model = model.half()
        self.model = torch.compile(model) if self.compile else model

    @torch.inference_mode()
    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        dtype = torch.float16 if self.half else torch.float32
        out = self.model(torch.from_numpy(optical).to(self.device, dtype), torch.from_numpy(sar).to(self.device, dtype))
        return {k: out[k].float().cpu().numpy() for k in self.outputs}

    def deactivate_impl(self) -> None:
        self.model = None
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)
            self._saved_threads = None


def load(
    path: Path | None, manifest: dict | None, *, variant: str = "", device: str | None = None, precision: str | None = None, **kwargs
) -> TorchRunner:
    """The registry's entry point: a checkpoint file (None: the shipped one)."""
    return TorchRunner(
        path, device=device or "cpu", half=precision == "fp16", compile=variant == "compile", fused=variant == "fused", **kwargs
    )


def unavailable(combo) -> str | None:
    import os
    import shutil

    from ..probe import cuda_available

    if combo.device == "cuda" and not cuda_available():
        return "no CUDA GPU on this machine"
    if combo.variant == "fused":
        from ..model.libraries import LIB_NAMES, find_library

        if find_library("cuda") is None:
            return f"{LIB_NAMES['cuda']} not built (make kernels)"
    if combo.variant == "compile" and combo.device == "cuda":
        from .registry import has_module

        if not has_module("triton"):
            return "torch.compile on CUDA needs triton, which is not installed"
    if combo.variant == "compile" and combo.device == "cpu" and not (shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")):
        return "torch.compile on the CPU needs a C++ compiler (g++), which is not on PATH"
    return None
