"""DSen2-CR: a deep residual network for cloud removal that never leaves full resolution
(Meraner et al., "Cloud removal in Sentinel-2 imagery using a deep residual neural network
and SAR-optical data fusion", ISPRS J. Photogramm. Remote Sens. 2020).

The cloudy optical bands and the SAR bands are concatenated, lifted to ``widths[0]``
features by one convolution, passed through ``blocks[0]`` residual blocks and mapped back
to the optical bands; the result is a correction added to the cloudy input."""

from __future__ import annotations

import torch
from torch import nn

from ..base import Network
from ..registry import ModelConfig

# Each block's output is scaled down before it joins the trunk, so that a deep stack of
# blocks without normalisation starts close to the identity and trains stably.
RESIDUAL_SCALE = 0.1


class ResidualBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.conv2(torch.relu(self.conv1(x)))


class DSen2CR(Network):
    """Inputs NCHW float32 in [0, 1], any H x W. Returns ``reconstruction`` (N x optical
    bands, in [0, 1])."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width, n = config.widths[0], config.blocks[0]
        self.head = nn.Conv2d(config.optical_bands + config.sar_bands, width, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(n)])
        self.tail = nn.Conv2d(width, config.optical_bands, 3, padding=1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.relu(self.head(torch.cat([optical, sar], dim=1)))
        # The long skip: the network only learns what the clouds changed.
        return {"reconstruction": torch.clamp(optical + self.tail(self.body(x)), 0.0, 1.0)}
