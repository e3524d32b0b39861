"""UnCRtainTS, mono-temporal: cloud removal with a per-band aleatoric variance (Ebel et
al., "UnCRtainTS: Uncertainty Quantification for Cloud Removal in Optical Satellite Time
Series", CVPR workshops 2023).

Without a time series the temporal attention and the down-sampling of the full model fall
away: the SAR and cloudy optical bands, concatenated SAR first, are lifted to ``widths[0]``
features by a 1x1 convolution, refined at full resolution by ``blocks[0]`` encoder MBConvs
(group norm) and ``blocks[1]`` decoder MBConvs (batch norm), and a 1x1 convolution gives
one mean and one variance per optical band.

One departure from the paper: the mean is added to the cloudy optical input (a long skip)
before it is clamped to [0, 1], as in every other network of the toolkit, so the network
learns a correction of what the clouds changed rather than the whole image. The variance is
that of the reconstruction, which is what the Gaussian likelihood loss compares with the
target."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from ..base import Network
from ..registry import ModelConfig

EXPANSION = 2
SE_REDUCTION = 8  # of the expanded width
GROUPS = 4  # of every group norm
MIN_VARIANCE = 1e-3  # keeps the likelihood's log-variance and division finite


def group_norm(c: int) -> nn.Module:
    return nn.GroupNorm(GROUPS, c)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, hidden: int):
        super().__init__()
        # Without biases, like the rest of the block: the published parameter count has none.
        self.reduce = nn.Conv2d(c, hidden, 1, bias=False)
        self.expand = nn.Conv2d(hidden, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.expand(F.gelu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class MBConv(nn.Module):
    """Pre-norm inverted residual: 1x1 expansion, depthwise 3x3, squeeze-excitation, 1x1
    projection, added to the input. Its convolutions carry no bias since a norm follows each."""

    def __init__(self, c: int, norm: Callable[[int], nn.Module]):
        super().__init__()
        hidden = EXPANSION * c
        self.body = nn.Sequential(
            norm(c),
            nn.Conv2d(c, hidden, 1, bias=False),
            norm(hidden),
            nn.GELU(),
            # Reflect padding: zeros at the tile border would look like dark pixels.
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="reflect", groups=hidden, bias=False),
            norm(hidden),
            nn.GELU(),
            SqueezeExcite(hidden, hidden // SE_REDUCTION),
            nn.Conv2d(hidden, c, 1, bias=False),
            norm(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UnCRtainTS(Network):
    """Inputs NCHW float32 in [0, 1], any H x W of at least 2 x 2 (reflect padding).
    Returns ``reconstruction`` (N x optical bands, in [0, 1]) and ``uncertainty`` (its
    per-band variance, N x optical bands, positive)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        width = config.widths[0]
        encoder, decoder = config.blocks[0], config.blocks[1]
        self.stem = nn.Sequential(nn.Conv2d(config.sar_bands + config.optical_bands, width, 1), group_norm(width), nn.ReLU())
        self.encoder = nn.Sequential(*[MBConv(width, group_norm) for _ in range(encoder)])
        self.decoder = nn.Sequential(*[MBConv(width, nn.BatchNorm2d) for _ in range(decoder)])
        self.head = nn.Conv2d(width, 2 * config.optical_bands, 1)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.decoder(self.encoder(self.stem(torch.cat([sar, optical], dim=1))))
        mean, variance = torch.split(self.head(x), self.config.optical_bands, dim=1)
        mean = optical + mean
        # Clamped where it is used, not where it learns: the likelihood raises the variance
        # before the mean improves, and a mean pushed past a bound by then would get no
        # gradient back through the clamp (a 300-step run ended below its own input).
        return {
            "reconstruction": mean if self.training else torch.clamp(mean, 0.0, 1.0),
            "uncertainty": F.softplus(variance) + MIN_VARIANCE,
        }
