"""This thread's alternate signal stack, kept as it was around native calls that replace it.

OpenVINO's CPU plugin (seen with 2026.4) installs an alternate signal stack on the calling
thread when it compiles a model and changes it again when the compiled model is destroyed,
and can leave it pointing at memory it has freed. Python runs every signal handler it
installs (SIGINT for Ctrl-C, the SIGCHLD handler of torch's DataLoader) with SA_ONSTACK, so
the next such signal is delivered onto that memory and the process dies with SIGSEGV
(si_code SI_KERNEL: the kernel could not write the signal frame). Seen here as a crash of
the test suite when a DataLoader with workers ran after OpenVINO had compiled and released
models in the same process."""

from __future__ import annotations

import contextlib
import ctypes
import sys

SS_ONSTACK, SS_DISABLE = 1, 2


class _Stack(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def kept_signal_stack():
    """Restore this thread's alternate signal stack (or its absence) when the block ends."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    saved = _Stack()
    if libc.sigaltstack(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        now = _Stack()
        if libc.sigaltstack(None, ctypes.byref(now)) == 0 and not now.ss_flags & SS_ONSTACK:  # never while running on it
            saved.ss_flags &= SS_DISABLE
            libc.sigaltstack(ctypes.byref(saved), None)


def current_signal_stack() -> tuple[int, int, int]:
    """(address, flags, size) of this thread's alternate signal stack (tests)."""
    libc = ctypes.CDLL(None, use_errno=True)
    now = _Stack()
    libc.sigaltstack(None, ctypes.byref(now))
    return int(now.ss_sp or 0), int(now.ss_flags), int(now.ss_size)
