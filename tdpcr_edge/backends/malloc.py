"""Keep freed memory in the process for reuse instead of handing it back to the kernel.

glibc serves every allocation over its mmap threshold (128 KiB, rising to at most 32 MiB)
with a fresh mapping and unmaps it on free. CPU inference allocates and frees activations of
tens of MB on every call, so every call page-faults them in again, and the streaming
pipeline's reads and blends add more faults of their own: system time a stream spends on
nothing but mapping the same memory again. With both thresholds raised the faults disappear.
The memory stays mapped at the process's peak, which streaming bounds anyway; one arena for
all threads, because per-thread arenas that keep freed memory each hold their own peak, and
a stream's peak RSS then varies from run to run. The figures: docs/experiments.md#streaming.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
_done: bool | None = None


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Raise glibc's mmap and trim thresholds and use one arena, once per process; False where
    the C library is not glibc (musl, macOS) and nothing changed."""
    global _done
    if _done is not None:
        return _done
    _done = False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu = libc.gnu_get_libc_version  # glibc only: mallopt's numbering is glibc's
    except (OSError, AttributeError):
        return False
    del gnu
    # Newer glibc refuses an mmap threshold above 32 MiB on 64-bit; fall back to that cap.
    ok = mallopt(M_MMAP_THRESHOLD, limit) == 1 or mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
    _done = bool(ok and mallopt(M_TRIM_THRESHOLD, limit) == 1 and mallopt(M_ARENA_MAX, 1) == 1)
    return _done
