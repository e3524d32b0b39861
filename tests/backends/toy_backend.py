"""A toy runtime backend the registry test plugs in: PyTorch under another name, reading a
checkpoint. It proves that a backend is its runner module plus one registry row."""

from pathlib import Path

from tdpcr_edge.backends.registry import Backend
from tdpcr_edge.backends.torch_runner import TorchRunner

ROW = Backend(
    "toy",
    "tests.backends.toy_backend",
    "checkpoint",
    ("numpy",),
    "numpy",
    "pip install numpy",
    ("cpu",),
    False,
    "checkpoint",
    "a test's toy backend (PyTorch eager, renamed)",
    rows=(("fp32", "", "cpu"),),
)


class ToyRunner(TorchRunner):
    name = "toy"


def load(path: Path | None, manifest: dict | None, **kwargs) -> ToyRunner:
    kwargs.pop("variant", None), kwargs.pop("precision", None)
    return ToyRunner(path, device=kwargs.pop("device", None) or "cpu")
