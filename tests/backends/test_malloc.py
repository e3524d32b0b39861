"""glibc malloc tuning for CPU inference: freed buffers are reused, not faulted in again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, numpy as np
from tdpcr_edge.backends.malloc import keep_freed_memory

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        a = np.ones(8 << 20)  # 64 MiB, above any mmap threshold glibc picks by itself
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
print(faults(), keep_freed_memory(), keep_freed_memory())
faults()
print(faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's; other C libraries are left alone")
def test_keep_freed_memory_stops_refaulting():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    before, ok, again, after = int(out[0]), out[1], out[2], int(out[3])
    assert ok == again == "True"
    assert before >= 20 * 32  # each 64 MiB array faulted in again: at least once per 2 MiB huge page
    assert after < before / 20
