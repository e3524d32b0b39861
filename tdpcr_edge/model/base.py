"""What every network the toolkit runs provides beyond ``forward(optical, sar) -> dict``:
inference on any size (padded to the architecture's stride) and the training phases. A
reconstruction-only baseline trains in one phase."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .registry import ModelConfig, get_arch, get_config


class Network(nn.Module):
    """Base of every architecture: ``self.config`` is its ``ModelConfig``."""

    def phase_parameters(self, phase: int) -> list[nn.Parameter]:
        """A single-task network trains everything in phase 1 and has no phase 2."""
        if phase == 1:
            return list(self.parameters())
        if phase == 2:
            return []
        raise ConfigError(f"unknown training phase {phase}: choose 1 or 2")

    def set_phase(self, phase: int) -> None:
        self.train(phase == 1)
        for p in self.parameters():
            p.requires_grad_(phase == 1)

    def prune_silent_adapters(self) -> int:
        return 0

    @torch.no_grad()
    def predict(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference on any H x W: reflect-pads to ``config.multiple`` and crops back."""
        h, w = optical.shape[-2:]
        m = self.config.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            optical = F.pad(optical, (0, pw, 0, ph), mode=mode)
            sar = F.pad(sar, (0, pw, 0, ph), mode=mode)
        out = self(optical, sar)
        return {k: v[..., :h, :w] for k, v in out.items() if isinstance(v, torch.Tensor)}


def build_model(config: str | ModelConfig = "tiny", arch: str = "tdpcr", **overrides) -> Network:
    """The network of ``config`` (a size of ``arch``, or a ModelConfig naming its architecture)."""
    if isinstance(config, str):
        config = get_config(config, arch, **overrides)
    elif overrides:
        config = replace(config, **overrides)
    return get_arch(config.arch).build(config)
