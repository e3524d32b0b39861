"""The CUDA kernel's own code run on the CPU (kernels/tests/cuda_emulation.h): pgf_kernel.cu
compiled as C++, every CUDA thread a std::thread, __syncthreads a barrier, under ASan and
UBSan, against the host reference over shapes that reach every path (paired and single
loads, tails, shared-memory staging strides, over 48 KiB of shared memory, the grid over N,
every compiled K, FP32 and FP16). Faults put into the kernel's index arithmetic must fail it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import fault_in
from tests.kernels.test_kernels import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed (the emulation compiles with CUDA's host headers)"),
]
TARGET = "tdpcr_kernel_emulation"


def build(src: Path, folder: Path) -> tuple[Path, subprocess.CompletedProcess]:
    cfg = subprocess.run(["cmake", "-S", str(src), "-B", str(folder), "-DCMAKE_CUDA_ARCHITECTURES=90"], capture_output=True, text=True)
    if cfg.returncode != 0:
        return folder / TARGET, cfg
    return folder / TARGET, subprocess.run(["cmake", "--build", str(folder), "-j2", "--target", TARGET], capture_output=True, text=True)


def test_the_kernel_code_matches_the_host_reference(tmp_path):
    binary, proc = build(ROOT, tmp_path / "build")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "warning" not in proc.stdout.lower()
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert "122 cases, 0 failed" in run.stdout


FAULTS = {
    # A pair's two elements swapped on load: only the paired path (even planes) notices.
    "paired load swapped": (
        "__ldg(reinterpret_cast<const float2*>(p));\n        a = v.x;\n        b = v.y;",
        "__ldg(reinterpret_cast<const float2*>(p));\n        a = v.y;\n        b = v.x;",
    ),
    # The tail guard one off: the last thread of an odd plane reads and writes one pixel past it.
    "tail one past the end": ("    if (first >= hw)\n", "    if (first > hw)\n"),
    # Shared memory staged with a stride of one block too few: part of the bank never loaded.
    "staging stride": (
        "    for (int i = threadIdx.x; i < KP * channels; i += blockDim.x)",
        "    for (int i = threadIdx.x; i < KP * channels / 2; i += blockDim.x)",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_in_the_kernel_fails(fault, kernel_sources):
    with fault_in(kernel_sources / "kernels" / "pgf" / "pgf_kernel.cu", *FAULTS[fault]):
        binary, proc = build(kernel_sources, kernel_sources.parent / "emulation-build")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0, f"{fault}: the emulation did not notice\n{run.stdout}"
