"""Parameter and multiply-accumulate counts per module, measured by tracing one forward
pass with torch's FLOP counter (so the figures follow the code, not a hand formula)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..errors import ConfigError
from .base import Network, build_model
from .registry import ModelConfig


@dataclass
class ModuleCost:
    name: str
    params: int
    macs: int


def module_costs(model: Network, tile: int = 256) -> list[ModuleCost]:
    """Cost of each top-level child and of the whole model for one tile (batch 1).
    Element-wise work is not counted: MACs are those of convolutions, linears and matmuls."""
    model = model.eval()
    c = model.config
    if tile % c.multiple:
        raise ConfigError(f"--tile {tile} is not a multiple of {c.multiple}, which the {c.name} model needs")
    device = next(model.parameters()).device  # the meta device counts without computing (``total_cost``)
    optical = torch.zeros(1, c.optical_bands, tile, tile, device=device)
    sar = torch.zeros(1, c.sar_bands, tile, tile, device=device)
    counter = FlopCounterMode(display=False, depth=4)
    with counter, torch.no_grad():
        model(optical, sar)
    flops = counter.get_flop_counts()
    root = type(model).__name__
    rows = []
    for name, child in model.named_children():
        key = f"{root}.{name}"
        if key in flops:
            f = sum(flops[key].values())
        else:  # a ModuleList is never called itself: add up its members
            f = sum(sum(v.values()) for k, v in flops.items() if k.startswith(key + ".") and k.count(".") == key.count(".") + 1)
        rows.append(ModuleCost(name, sum(p.numel() for p in child.parameters()), int(f // 2)))
    rows.append(ModuleCost("total", sum(p.numel() for p in model.parameters()), int(sum(flops.get("Global", {}).values()) // 2)))
    return rows


def total_cost(config: ModelConfig, tile: int = 256) -> ModuleCost:
    """Parameters and MACs per ``tile`` of a network of ``config``, built on torch's meta
    device: shapes only, so a full-size baseline is counted in a second, without its memory."""
    with torch.device("meta"):
        model = build_model(config)
    return module_costs(model, tile)[-1]
