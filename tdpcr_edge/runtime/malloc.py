"""Keep freed memory in the process for reuse instead of handing it back to the kernel.

glibc serves every allocation over its mmap threshold (128 KiB, rising to at most 32 MiB)
with a fresh mapping and unmaps it on free. CPU inference allocates and frees activations of
tens of MB on every call, so every call page-faults them in again: on a 25-tile 1024^2 scene
(shipped tiny model, torch, 2 AMD EPYC cores) that was 570 000 minor faults and 1.3 s of
system time out of 7 s, and the streaming pipeline's reads and blends added 100 000 more.
With both thresholds raised the faults disappear and the same work takes 6.1 s. The memory
stays mapped at the process's peak, which streaming bounds anyway; one arena for all threads,
because per-thread arenas that keep freed memory each hold their own peak: peak RSS of a
streamed 2048^2 scene then varied by 80 MB from run to run (one arena: 834 and 863 MB, against
1024^2's 763 and 793 MB).
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
