"""The Runner protocol: every backend turns (optical, sar) numpy arrays into the model's
outputs the same way.

Lifecycle as in Polygraphy: ``activate`` loads what is heavy, ``infer`` runs, ``deactivate``
frees; a runner is a context manager and activates lazily on first call. Subclasses
implement only ``activate_impl``, ``infer_impl`` and ``deactivate_impl``. Inputs of any
height and width are padded here to the model's multiple and outputs cropped back, so all
backends agree on arbitrary tiles.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..contract import OUTPUTS
from ..errors import DataError


class Runner(ABC):
    name: str = "runner"
    # Whether ``activate`` may run on another thread than the calls that follow (the scene
    # stream activates such a runner while it opens and first reads the scene): not where
    # activation binds something to its thread (a CUDA context) or sets what a thread keeps.
    activates_on_any_thread: bool = False

    def __init__(self, multiple: int, optical_bands: int, sar_bands: int):
        self.multiple = multiple
        self.optical_bands = optical_bands
        self.sar_bands = sar_bands
        self.is_active = False

    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        """optical N x bands x H x W and sar N x 2 x H x W, float32 in [0, 1]. Returns
        ``reconstruction`` (N x bands x H x W), ``segmentation`` (class logits) and
        ``reliance`` (N x 1 x H x W), float32."""
        self._check(optical, "optical", self.optical_bands)
        self._check(sar, "sar", self.sar_bands)
        if optical.shape[0] != sar.shape[0] or optical.shape[2:] != sar.shape[2:]:
            raise DataError(f"optical {optical.shape} and sar {sar.shape} differ in batch or size; pass co-registered tiles")
        self.activate()
        h, w = optical.shape[2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "edge"
            pad = ((0, 0), (0, 0), (0, ph), (0, pw))
            optical, sar = np.pad(optical, pad, mode=mode), np.pad(sar, pad, mode=mode)
        out = self.infer_impl(np.ascontiguousarray(optical, np.float32), np.ascontiguousarray(sar, np.float32))
        return {k: np.asarray(out[k], np.float32)[..., :h, :w] for k in OUTPUTS if k in out}

    __call__ = infer

    def share_cpu(self, workers: int) -> int:
        """Prepare for ``workers`` calls at once, each computing on its share of the CPU's
        cores, and return how many concurrent calls the backend takes. The default, 1, keeps
        calls serial: a GPU backend would only queue them on its one device. Call it before
        the runner activates."""
        return 1

    @staticmethod
    def _check(x: np.ndarray, name: str, bands: int) -> None:
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1] != bands:
            shape = getattr(x, "shape", type(x).__name__)
            raise DataError(f"{name} input has shape {shape}, expected N x {bands} x H x W numpy float32")
        if x.dtype != np.float32:
            raise DataError(f"{name} input is {x.dtype}, expected float32 in [0, 1]; normalise it first")

    @abstractmethod
    def activate_impl(self) -> None: ...

    @abstractmethod
    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]: ...

    def deactivate_impl(self) -> None:
        pass
