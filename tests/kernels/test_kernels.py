"""kernels/: the host reference against PyTorch's PGF (CI, no GPU), the TensorRT plugin
compiled against every supported TensorRT, and, on a GPU, the CUDA kernel itself."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tdpcr_edge.model.fused import PgfLibrary, enable_fused
from tdpcr_edge.model.pgf import pgf_fuse

pytestmark = pytest.mark.slow  # end to end: training, exporting, streaming or compiling

ROOT = Path(__file__).resolve().parents[2]
TRT_HEADERS = ROOT.parent / "shared" / "third_party" / "tensorrt-headers"
TRT_VERSIONS = ("10.3", "10.16", "11.1")
# Awkward shapes: C not a multiple of 8, odd H and W, N > 1, and the model's own.
SHAPES = [(1, 16, 6, 8, 8), (2, 13, 4, 7, 9), (3, 5, 8, 1, 11), (2, 24, 6, 5, 1), (1, 3, 1, 3, 3), (2, 7, 12, 6, 5)]

needs_cmake = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


def cmake_build(build: Path, *options: str, target: str | None = None) -> subprocess.CompletedProcess:
    cfg = subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build), *options], capture_output=True, text=True)
    if cfg.returncode != 0:
        return cfg
    return subprocess.run(
        ["cmake", "--build", str(build), "-j2", *(["--target", target] if target else [])], capture_output=True, text=True
    )


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    build = tmp_path_factory.mktemp("kernels-build")
    proc = cmake_build(build)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build


@pytest.fixture(scope="session")
def host(build_dir) -> PgfLibrary:
    lib = PgfLibrary(build_dir / "libtdpcr_pgf_host.so")
    assert lib.backend == "host"
    return lib


def random_inputs(n, c, k, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(n, c, h, w, generator=g),
        torch.rand(n, c, h, w, generator=g),
        torch.softmax(torch.randn(n, k, h, w, generator=g) * 2, 1),
        torch.randn(k, c, generator=g),
        torch.rand(n, c, generator=g),
        torch.randn(1, k, 3, 3, generator=g) * 0.5,
        torch.randn(1, generator=g),
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_host_reference_matches_pytorch_fp32(host, shape):
    inputs = random_inputs(*shape, seed=sum(shape))
    ref_fused, ref_rel = pgf_fuse(*inputs)
    fused, rel = host.run_numpy(*[t.numpy() for t in inputs])
    np.testing.assert_allclose(fused, ref_fused.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(rel, ref_rel.numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_host_reference_fp16(host, shape):
    inputs = [t.half() for t in random_inputs(*shape, seed=7)]
    ref_fused, ref_rel = pgf_fuse(*[t.float() for t in inputs])  # the same rounded inputs, FP32 math
    fused, rel = host.run_numpy(*[t.numpy() for t in inputs])
    assert fused.dtype == np.float16
    np.testing.assert_allclose(fused.astype(np.float32), ref_fused.numpy(), atol=1e-2, rtol=0)
    np.testing.assert_allclose(rel.astype(np.float32), ref_rel.numpy(), atol=1e-2, rtol=0)
    # Rounding to nearest: the host's FP16 output is numpy's rounding of the FP32 result,
    # up to one unit in the last place where the FP32 results differ in their last bits.
    np.testing.assert_allclose(fused.astype(np.float32), ref_fused.numpy().astype(np.float16).astype(np.float32), atol=2e-3, rtol=0)


def test_host_skips_reliance_when_not_asked(host):
    inputs = [t.numpy() for t in random_inputs(1, 4, 4, 3, 3)]
    fused, rel = host.run_numpy(*inputs, reliance=False)
    assert rel is None and np.isfinite(fused).all()


def test_host_refuses_bad_launches(host):
    inputs = [t.numpy() for t in random_inputs(1, 4, 9, 3, 3)]
    with pytest.raises(RuntimeError, match="bad shape"):
        host.run_numpy(*inputs)  # 9 prompt channels: not compiled
    with pytest.raises(RuntimeError, match="null"):
        host.launch(
            {k: None for k in ("optical", "sar_proj", "prompt", "bank", "context", "bias_weight", "bias_bias", "fused", "reliance")},
            (1, 1, 1, 1, 1),
            0,
        )


def test_cuda_library_compiles(build_dir):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed: the CUDA library is not built")
    lib = build_dir / "libtdpcr_pgf_cuda.so"
    assert lib.is_file()
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True).stdout
    assert "tdpcr_pgf_launch" in symbols


@pytest.fixture(scope="module")
def plugin_builds(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess] | str]:
    """The plugin built against every TensorRT header set (or why not), the builds side by side
    (each is one nvcc and a few g++ runs, mostly single-threaded): a third less wall time than
    one by one."""
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed: the plugin needs the CUDA kernel")

    def build(version):
        headers = TRT_HEADERS / version / "include"
        if not headers.is_dir():
            return f"TensorRT {version} headers not found at {headers}"
        folder = tmp_path_factory.mktemp(f"trt-{version}")
        # One architecture keeps the build short.
        return folder, cmake_build(folder, f"-DTensorRT_INCLUDE_DIR={headers}", "-DCMAKE_CUDA_ARCHITECTURES=90", target="tdpcr_trt_plugin")

    with ThreadPoolExecutor(len(TRT_VERSIONS)) as pool:
        return dict(zip(TRT_VERSIONS, pool.map(build, TRT_VERSIONS)))


@needs_cmake
@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_trt_plugin_compiles_without_warnings(plugin_builds, version):
    if isinstance(plugin_builds[version], str):
        pytest.skip(plugin_builds[version])
    folder, proc = plugin_builds[version]
    # -Werror is on by default for our sources.
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "warning" not in proc.stdout.lower()
    plugin = folder / "libtdpcr_trt_plugin.so"
    lib = ctypes.CDLL(str(plugin))  # loads without TensorRT: the plugin calls none of its functions
    get_creators = lib.getCreators
    get_creators.restype = ctypes.c_void_p
    count = ctypes.c_int32(0)
    assert get_creators(ctypes.byref(count)) and count.value == 1
    # What `tdpcr-edge check --plugin-lib` reads: the creators, asked from the library itself.
    from tdpcr_edge.backends.trt.check import plugin_creators

    assert plugin_creators(plugin) == {("TDP_PGF", "1")}


def test_enable_fused_without_gpu_falls_back_with_reason():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the fallback path is not taken")
    from tdpcr_edge.model import build_model

    model = build_model("tiny")
    enabled, reason = enable_fused(model)
    assert not enabled and reason == "no CUDA device"
    assert not any(getattr(m, "fused_op", False) for m in model.modules())


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="session")
def cuda_lib(build_dir) -> PgfLibrary:
    path = build_dir / "libtdpcr_pgf_cuda.so"
    if not path.is_file():
        pytest.skip("the CUDA library was not built (no nvcc)")
    return PgfLibrary(path)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("shape", SHAPES + [(4, 64, 6, 129, 127), (2, 192, 8, 64, 64)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2)])
def test_cuda_kernel_matches_pytorch(cuda_lib, shape, dtype, tol):
    inputs = [t.cuda().to(dtype) for t in random_inputs(*shape, seed=3)]
    ref_fused, ref_rel = pgf_fuse(*[t.float() for t in inputs])
    fused, rel = cuda_lib.run_torch(*inputs)
    torch.cuda.synchronize()
    assert fused.dtype == dtype
    torch.testing.assert_close(fused.float(), ref_fused, atol=tol, rtol=0)
    torch.testing.assert_close(rel.float(), ref_rel, atol=tol, rtol=0)


@pytest.mark.gpu
@cuda
def test_fused_model_matches_reference_on_gpu(build_dir, monkeypatch):
    from tdpcr_edge.model import build_model

    monkeypatch.setenv("TDPCR_KERNEL_DIR", str(build_dir))
    torch.manual_seed(0)
    model = build_model("tiny").cuda().eval()
    o, s = torch.rand(2, 13, 64, 64, device="cuda"), torch.rand(2, 2, 64, 64, device="cuda")
    with torch.no_grad():
        ref = model(o, s)
        enabled, reason = enable_fused(model)
        assert enabled, reason
        out = model(o, s)
    torch.testing.assert_close(out["reconstruction"], ref["reconstruction"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out["reliance"], ref["reliance"], atol=1e-5, rtol=0)
