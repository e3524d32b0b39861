"""The TDP_PGF plugin as TensorRT calls it, on the CPU (kernels/tests/plugin_contract.cpp):
built against every TensorRT header set under AddressSanitizer and UBSan, with the plugin
glue linked to the host reference of the C ABI. The contract checks pass; enqueue, through
the creator and serialisation as an engine loads the plugin, matches PyTorch's PGF on
awkward shapes; and faults put into the plugin make the contract fail."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from tdpcr_edge.model.pgf import pgf_fuse
from tests.helpers import fault_in
from tests.kernels.test_kernels import ROOT, TRT_HEADERS, TRT_VERSIONS, random_inputs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed"),
    pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed (CMake builds the plugin only with CUDA's headers)"),
]
TARGET = "tdpcr_plugin_contract"


def build(src: Path, folder: Path, version: str) -> tuple[Path, subprocess.CompletedProcess]:
    """Configure and build the contract test from the source tree ``src``."""
    headers = TRT_HEADERS / version / "include"
    cfg = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(folder), f"-DTensorRT_INCLUDE_DIR={headers}", "-DCMAKE_CUDA_ARCHITECTURES=90"],
        capture_output=True,
        text=True,
    )
    if cfg.returncode != 0:
        return folder / TARGET, cfg
    return folder / TARGET, subprocess.run(["cmake", "--build", str(folder), "-j2", "--target", TARGET], capture_output=True, text=True)


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path | str]:
    def one(version):
        if not (TRT_HEADERS / version / "include").is_dir():
            return f"TensorRT {version} headers not found under {TRT_HEADERS}"
        binary, proc = build(ROOT, tmp_path_factory.mktemp(f"contract-{version.replace('.', '_')}"), version)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "warning" not in proc.stdout.lower()
        return binary

    with ThreadPoolExecutor(len(TRT_VERSIONS)) as pool:
        return dict(zip(TRT_VERSIONS, pool.map(one, TRT_VERSIONS)))


def binary_for(binaries, version) -> Path:
    if isinstance(binaries[version], str):
        pytest.skip(binaries[version])
    return binaries[version]


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_contract_holds(binaries, version):
    binary = binary_for(binaries, version)
    proc = subprocess.run([str(binary)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert f"TensorRT headers {version}" in proc.stdout and ", 0 failed" in proc.stdout
    # ctest runs the same binary.
    ctest = subprocess.run(["ctest", "--output-on-failure", "-R", "plugin_contract"], cwd=binary.parent, capture_output=True, text=True)
    assert ctest.returncode == 0 and "100% tests passed" in ctest.stdout, ctest.stdout[-2000:]


# Odd widths and heights, channels not a multiple of 8, every supported K, batch > 1.
SHAPES = [
    (2, 13, 1, 7, 9),
    (1, 8, 2, 1, 33),
    (3, 5, 3, 4, 11),
    (2, 24, 4, 5, 1),
    (1, 16, 5, 9, 7),
    (2, 7, 6, 6, 5),
    (1, 32, 7, 3, 17),
    (2, 12, 8, 8, 15),
    (1, 20, 12, 5, 13),
    (2, 9, 16, 7, 3),
]


@pytest.mark.parametrize("version", TRT_VERSIONS)
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float16, 1e-2)])
def test_enqueue_matches_pytorch(binaries, version, dtype, tol, tmp_path):
    binary = binary_for(binaries, version)
    for i, shape in enumerate(SHAPES):
        inputs = random_inputs(*shape, seed=10 + i)
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        n, c, k, h, w = shape
        (folder / "shape.txt").write_text(f"{n} {c} {k} {h} {w} {int(dtype == np.float16)} 1\n")
        for j, t in enumerate(inputs):
            (folder / f"in{j}.bin").write_bytes(t.numpy().astype(dtype).tobytes())
        proc = subprocess.run([str(binary), "enqueue", str(folder)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        # The reference computes on the same (rounded) inputs the plugin received.
        ref_fused, ref_rel = pgf_fuse(*[t.to(torch.float16).float() if dtype == np.float16 else t for t in inputs])
        fused = np.frombuffer((folder / "fused.bin").read_bytes(), dtype).reshape(n, c, h, w).astype(np.float32)
        rel = np.frombuffer((folder / "reliance.bin").read_bytes(), dtype).reshape(n, 1, h, w).astype(np.float32)
        np.testing.assert_allclose(fused, ref_fused.numpy(), atol=tol, rtol=0, err_msg=f"fused, shape {shape}")
        np.testing.assert_allclose(rel, ref_rel.numpy(), atol=tol, rtol=0, err_msg=f"reliance, shape {shape}")


# Faults put into the plugin's source, each of which the contract must catch.
FAULTS = {
    "swapped inputs": (
        "tdpcr_pgf_tensors tensors{inputs[kOptical], inputs[kSarProj],",
        "tdpcr_pgf_tensors tensors{inputs[kSarProj], inputs[kOptical],",
    ),
    "wrong output type": ("    outputTypes[1] = inputTypes[kOptical];", "    outputTypes[1] = nvinfer1::DataType::kFLOAT;"),
    "serialisation drops a field": (
        "    return &mFieldCollection;\n}\n\nPgfPluginCreator::PgfPluginCreator()",
        "    static nvinfer1::PluginFieldCollection empty{};\n    return &empty;\n}\n\nPgfPluginCreator::PgfPluginCreator()",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_fault_in_the_plugin_fails_the_contract(fault, kernel_sources):
    if not (TRT_HEADERS / "10.16" / "include").is_dir():
        pytest.skip(f"TensorRT 10.16 headers not found under {TRT_HEADERS}")
    with fault_in(kernel_sources / "kernels" / "trt_plugin" / "tdp_pgf_plugin.cpp", *FAULTS[fault]):
        binary, proc = build(kernel_sources, kernel_sources.parent / "contract-build", "10.16")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        run = subprocess.run([str(binary)], capture_output=True, text=True)
    assert run.returncode == 1 and "FAIL" in run.stderr, f"{fault}: the contract did not notice\n{run.stdout}"
