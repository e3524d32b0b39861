"""The replay backend, for benchmarks and tests (not a user backend: ``infer --backend`` does
not offer it). It answers at once with a stored model output of the right shape: the
reconstruction is the cloudy input itself (so the outputs compress like real ones), the class
logits, the SAR reliance and the per-band variance, those of them the model has
(``model.registry.outputs_of``), are arrays made once per shape and replayed. Streaming through it
measures the scene pipeline's own ceiling: tiles per second with zero inference time.

It reads an artifact's manifest (the shipped FP32 artifact without ``--model``), never a
checkpoint: loading one imports torch, and in a fresh process that import takes longer than
streaming a 2048 x 2048 scene, time a benchmark would count as the pipeline's
(docs/streaming.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .runner import Runner


class ReplayRunner(Runner):
    name = "replay"

    def __init__(self, config: dict):
        from ..model.registry import ModelConfig, outputs_of

        c = ModelConfig.from_dict(config)
        super().__init__(c.multiple, c.optical_bands, c.sar_bands)
        self.classes = c.num_classes
        self.outputs = outputs_of(c)
        self._stored: dict[tuple[int, int, int], dict[str, np.ndarray]] = {}

    def activate_impl(self) -> None:
        pass

    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        n, _, h, w = optical.shape
        key = (n, h, w)
        if key not in self._stored:
            self._stored[key] = self._made(n, optical.shape[1], h, w)
        return {"reconstruction": optical, **self._stored[key]}

    def _made(self, n: int, bands: int, h: int, w: int) -> dict[str, np.ndarray]:
        """The model's outputs other than the reconstruction: values that vary over the tile (a
        gradient per class, per row), so no output is one constant that compresses to nothing."""
        rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[None, None, :, None]
        made = {}
        if "segmentation" in self.outputs:
            ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, None, None, :]
            made["segmentation"] = np.broadcast_to(
                ramp * np.arange(1, self.classes + 1, dtype=np.float32)[None, :, None, None]
                - np.arange(self.classes, dtype=np.float32)[None, :, None, None],
                (n, self.classes, h, w),
            )
        if "reliance" in self.outputs:
            made["reliance"] = np.broadcast_to(rows, (n, 1, h, w))
        if "uncertainty" in self.outputs:  # a variance: positive
            made["uncertainty"] = np.broadcast_to(1e-4 + 1e-3 * rows, (n, bands, h, w))
        return made


def load(path: Path, manifest: dict, **kwargs) -> ReplayRunner:
    """The registry's entry point: an artifact folder (only its manifest is read)."""
    return ReplayRunner(manifest["model"])
