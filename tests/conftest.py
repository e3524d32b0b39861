from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.synth_folders import write_synthetic
from tdpcr_edge.data.synthetic import CLASS_COLORS, CLASS_NAMES
from tdpcr_edge.model import build_model
from tdpcr_edge.train.checkpoint import Checkpoint, save_checkpoint


def pytest_configure(config):
    """One graph cache per test run (tdpcr_edge.export.graph_cache), shared by the xdist
    workers, which inherit this process's environment, and by every CLI the tests start: the
    run traces each graph once, and never reads one that an earlier run or the user left."""
    if hasattr(config, "workerinput"):
        return
    folder = tempfile.mkdtemp(prefix="tdpcr-graph-cache-")
    os.environ["TDPCR_GRAPH_CACHE"] = folder
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory) -> Path:
    """Three 64x64 synthetic scenes as `tdpcr-edge synth` writes them."""
    root = tmp_path_factory.mktemp("scenes") / "scenes"
    write_synthetic(root, scenes=3, size=64, seed=11)
    return root


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny model in a real checkpoint file: plumbing tests need no training."""
    torch.manual_seed(0)
    model = build_model("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    save_checkpoint(path, Checkpoint(model.config, {}, Normalization(), list(CLASS_NAMES), list(CLASS_COLORS)), model)
    return path


@pytest.fixture(scope="session")
def kernel_sources(tmp_path_factory) -> Path:
    """A copy of CMakeLists.txt and kernels/ for tests that put faults into them (and take
    them out again): each fault is then a rebuild of one file."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    src = tmp_path_factory.mktemp("kernel-sources") / "src"
    src.mkdir()
    shutil.copy(root / "CMakeLists.txt", src)
    shutil.copytree(root / "kernels", src / "kernels")
    return src
