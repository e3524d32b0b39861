"""PyTorch backend: the reference every other backend is measured against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..train.checkpoint import load_checkpoint
from .runner import Runner


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, checkpoint: str | Path | None = None, device: str = "cpu"):
        self.checkpoint = load_checkpoint(checkpoint)
        c = self.checkpoint.config
        super().__init__(c.multiple, c.optical_bands, c.sar_bands)
        self.device = torch.device(device)
        self.model = None

    def activate_impl(self) -> None:
        self.model = self.checkpoint.build().to(self.device)

    @torch.inference_mode()
    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(optical).to(self.device), torch.from_numpy(sar).to(self.device))
        reliance = out.get("reliance")
        if reliance is None:
            reliance = torch.zeros_like(out["reconstruction"][:, :1])
        return {"reconstruction": out["reconstruction"].cpu().numpy(), "segmentation": out["segmentation"].cpu().numpy(), "reliance": reliance.cpu().numpy()}

    def deactivate_impl(self) -> None:
        self.model = None
