"""TDP-CR: two light encoders, PGF at every scale, one U-shaped decoder, and two heads
(reconstruction as a residual on the cloudy input, segmentation) on shared features."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .base import Network
from .pgf import ConcatFusion, PromptGuidedFusion
from .registry import ModelConfig


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(c, c), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class Encoder(nn.Module):
    """Returns one feature map per scale, full resolution first."""

    def __init__(self, cin: int, widths: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        stages = []
        prev = cin
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stages.append(nn.Sequential(ConvBNAct(prev, w, stride=1 if i == 0 else 2), *[ResBlock(w) for _ in range(n)]))
            prev = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class Adapter(nn.Module):
    """Low-rank 1x1 adapter for phase 2: decoder features of one scale, mapped to the
    full-resolution width and upsampled. The up-projection starts at zero, so an untrained
    adapter adds nothing."""

    def __init__(self, cin: int, cout: int, rank: int):
        super().__init__()
        self.down = nn.Conv2d(cin, rank, 1, bias=False)
        self.up = nn.Conv2d(rank, cout, 1, bias=False)
        nn.init.zeros_(self.up.weight)
        self.enabled = True  # a Python flag, so export can drop silent adapters statically

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y = self.up(F.relu(self.down(x)))
        return y if y.shape[-2:] == size else F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class DecoderStage(nn.Module):
    def __init__(self, cdeep: int, cskip: int):
        super().__init__()
        self.reduce = ConvBNAct(cdeep, cskip, k=1)
        self.merge = ConvBNAct(2 * cskip, cskip)
        self.refine = ResBlock(cskip)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.reduce(deep), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(self.merge(torch.cat([up, skip], dim=1)))


class TDPCR(Network):
    """Inputs NCHW float32 in [0, 1]; H and W multiples of ``config.multiple``.

    Returns ``reconstruction`` (N x bands, in [0, 1]), ``segmentation`` (class logits),
    ``reliance`` (full-resolution SAR reliance in [0, 1], PGF only), and per scale, for
    supervision, ``prompt_logits`` and ``reliance_maps`` (PGF only).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w, b = config.widths, config.blocks
        self.optical_encoder = Encoder(config.optical_bands, w, b)
        self.sar_encoder = Encoder(config.sar_bands, w, tuple(max(1, n - 1) for n in b))
        fusion = PromptGuidedFusion if config.fusion == "pgf" else ConcatFusion
        self.fusion = nn.ModuleList([fusion(c, config.prompts) for c in w])
        self.decoder = nn.ModuleList([DecoderStage(w[i + 1], w[i]) for i in range(len(w) - 1)])
        # Phase-2 adapters read the shared decoder features of every scale on a side
        # branch into the segmentation head, so semantic training never alters the
        # reconstruction path.
        self.adapters = nn.ModuleList([Adapter(c, w[0], config.adapter_rank) for c in w])
        self.reconstruction_head = nn.Sequential(ConvBNAct(w[0], w[0]), nn.Conv2d(w[0], config.optical_bands, 1))
        self.segmentation_head = nn.Sequential(ConvBNAct(w[0], w[0]), ConvBNAct(w[0], w[0]), nn.Conv2d(w[0], config.num_classes, 1))

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        fused, prompt_logits, reliance_maps = [], [], []
        for o, s, fusion in zip(self.optical_encoder(optical), self.sar_encoder(sar), self.fusion):
            out = fusion(o, s)
            fused.append(out["fused"])
            if "prompt_logits" in out:
                prompt_logits.append(out["prompt_logits"])
                reliance_maps.append(out["reliance"])
        x = fused[-1]
        levels = [x]
        for i in reversed(range(len(self.decoder))):
            x = self.decoder[i](x, fused[i])
            levels.append(x)
        size = x.shape[-2:]
        semantic = x
        for level, adapter in zip(reversed(levels), self.adapters):
            if adapter.enabled:
                semantic = semantic + adapter(level, size)
        result = {
            "reconstruction": torch.clamp(optical + self.reconstruction_head(x), 0.0, 1.0),
            "segmentation": self.segmentation_head(semantic),
            "prompt_logits": prompt_logits,
            "reliance_maps": reliance_maps,
        }
        if reliance_maps:
            result["reliance"] = reliance_maps[0]
        return result

    def phase_parameters(self, phase: int) -> list[nn.Parameter]:
        """Phase 1 trains reconstruction (everything but the segmentation head and the
        adapters); phase 2 trains only the segmentation head and the adapters."""
        phase2 = {id(p) for m in (self.segmentation_head, self.adapters) for p in m.parameters()}
        if phase == 1:
            return [p for p in self.parameters() if id(p) not in phase2]
        if phase == 2:
            return [p for p in self.parameters() if id(p) in phase2]
        raise ConfigError(f"unknown training phase {phase}: choose 1 or 2")

    def set_phase(self, phase: int) -> None:
        """Train mode and gradients only where ``phase`` trains weights, so frozen batch
        norms keep their statistics."""
        if phase == 1:
            self.train()
            self.segmentation_head.eval()
        else:
            self.eval()
            self.segmentation_head.train()
            self.adapters.train()
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.phase_parameters(phase):
            p.requires_grad_(True)

    def prune_silent_adapters(self) -> int:
        """Disable adapters whose up-projection is all zero (never trained): they add
        nothing, and their all-zero outputs would only confuse INT8 calibration."""
        silent = 0
        for adapter in self.adapters:
            adapter.enabled = bool(adapter.up.weight.detach().abs().sum() > 0)
            silent += not adapter.enabled
        return silent
