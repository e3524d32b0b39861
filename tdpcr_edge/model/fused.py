"""The fused PGF kernel from Python: a ctypes binding of the C ABI in kernels/pgf/pgf_capi.h
(the CUDA library or the host reference, which share it), and the switch that routes a
model's PGF through it on CUDA tensors.

Libraries are looked up in $TDPCR_KERNEL_DIR, then the repository's build/ folder. When the
CUDA library or a GPU is missing, ``enable_fused`` leaves the model on the reference path and
says why (logged and returned), rather than failing.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import numpy as np
import torch

from .libraries import LIB_NAMES, find_library, search_dirs
from .pgf import PromptGuidedFusion, pgf_fuse_op

log = logging.getLogger(__name__)

STATUS = {0: "ok", 1: "a tensor pointer is null", 2: "bad shape", 3: "bad dtype", 4: "CUDA launch failed"}
FLOAT32, FLOAT16 = 0, 1


class _Shape(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("c", ctypes.c_int), ("k", ctypes.c_int), ("h", ctypes.c_int), ("w", ctypes.c_int)]


class _Tensors(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_void_p)
        for name in ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias", "fused", "reliance")
    ]


class PgfLibrary:
    """One loaded implementation of ``tdpcr_pgf_launch``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.tdpcr_pgf_launch.argtypes = [ctypes.POINTER(_Tensors), _Shape, ctypes.c_int, ctypes.c_void_p]
        self.lib.tdpcr_pgf_launch.restype = ctypes.c_int
        self.lib.tdpcr_pgf_backend.restype = ctypes.c_char_p
        self.backend = self.lib.tdpcr_pgf_backend().decode()

    def launch(self, ptrs: dict[str, int | None], shape: tuple[int, int, int, int, int], dtype: int, stream: int = 0) -> None:
        status = self.lib.tdpcr_pgf_launch(ctypes.byref(_Tensors(**ptrs)), _Shape(*shape), dtype, ctypes.c_void_p(stream))
        if status != 0:
            from ..errors import RunFailed

            raise RunFailed(f"{self.path.name}: tdpcr_pgf_launch failed: {STATUS.get(status, status)}")

    def run_numpy(self, optical, sar_proj, prompt, bank, context, bias_weight, bias_bias, reliance: bool = True):
        """Host reference on numpy arrays (float32 or float16, all alike)."""
        dtype = optical.dtype
        if dtype not in (np.float32, np.float16):
            from ..errors import DataError

            raise DataError(f"dtype {dtype} is not float32 or float16")
        arrays = [np.ascontiguousarray(a, dtype) for a in (optical, sar_proj, prompt, bank, context, bias_weight, bias_bias)]
        n, c, h, w = arrays[0].shape
        fused = np.empty_like(arrays[0])
        rel = np.empty((n, 1, h, w), dtype) if reliance else None
        names = ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias")
        ptrs = {k: a.ctypes.data for k, a in zip(names, arrays)}
        ptrs.update(fused=fused.ctypes.data, reliance=rel.ctypes.data if rel is not None else None)
        self.launch(ptrs, (n, c, arrays[2].shape[1], h, w), FLOAT16 if dtype == np.float16 else FLOAT32)
        return fused, rel

    def run_torch(self, optical, sar_proj, prompt, bank, context, bias_weight, bias_bias):
        """CUDA library on CUDA tensors, on torch's current stream."""
        dtype = optical.dtype
        args = [t.contiguous().to(dtype) for t in (optical, sar_proj, prompt, bank, context, bias_weight, bias_bias)]
        n, c, h, w = args[0].shape
        fused = torch.empty_like(args[0])
        rel = args[0].new_empty((n, 1, h, w))
        names = ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias")
        ptrs = {k: t.data_ptr() for k, t in zip(names, args)}
        ptrs.update(fused=fused.data_ptr(), reliance=rel.data_ptr())
        stream = torch.cuda.current_stream(args[0].device).cuda_stream
        self.launch(ptrs, (n, c, args[2].shape[1], h, w), FLOAT16 if dtype == torch.float16 else FLOAT32, stream)
        return fused, rel


_CUDA_LIB: PgfLibrary | None = None


def _register_cuda_kernel(lib: PgfLibrary) -> None:
    global _CUDA_LIB
    if _CUDA_LIB is None:

        @pgf_fuse_op.register_kernel("cuda")
        def _(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias):
            return _CUDA_LIB.run_torch(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias)

    _CUDA_LIB = lib


def enable_fused(model: torch.nn.Module) -> tuple[bool, str]:
    """Route every PGF of ``model`` through the fused CUDA kernel. Returns (enabled, reason);
    on any missing piece the model keeps the reference path and the reason is logged."""
    if not torch.cuda.is_available():
        reason = "no CUDA device"
    elif (path := find_library("cuda")) is None:
        reason = f"{LIB_NAMES['cuda']} not found in {', '.join(map(str, search_dirs()))}; build it with cmake (see README)"
    else:
        try:
            _register_cuda_kernel(PgfLibrary(path))
        except OSError as exc:
            reason = f"{path}: cannot load ({exc})"
        else:
            for m in model.modules():
                if isinstance(m, PromptGuidedFusion):
                    m.fused_op = True
            return True, f"fused PGF kernel from {path}"
    log.warning("fused PGF disabled, using the PyTorch reference: %s", reason)
    return False, reason
