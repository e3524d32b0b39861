"""Quantisation-aware training: INT8 rounding simulated where the exported INT8 graph rounds.

``tdpcr-edge export --precision int8`` puts Q/DQ on the inputs and weights of every
convolution (per-tensor symmetric INT8 activations, per-output-channel symmetric INT8
weights, float biases). A model trained in FP32 and quantised afterwards loses 7.6 dB and
43 mIoU points that way (README, Export): its decoder computes small residuals from
differences of large, heavy-tailed activations that INT8 cannot hold. Trained with the same
rounding in the loop, the network learns features that survive it.

Weights are rounded before batch-norm folding; the export folds batch norm into the
convolution first, but folding scales each output channel, and per-output-channel
symmetric rounding does not change under that scaling, so the grid is the same.
Activation ranges follow an exponential moving average of each batch's largest magnitude
while a layer trains, and freeze with it (phase 2 keeps phase 1's ranges). Rounding is
torch's fake-quantise (multiply by 1/scale), where ONNX divides: the last bit of a
near-tie can differ, so graph and simulation agree in error, not bit for bit (tested).
"""

from __future__ import annotations

import torch
from torch import nn

QMAX = 127


class _ConvFakeQuant:
    """Replaces a convolution's forward: fake-quantised input and weight, float bias."""

    def __init__(self, conv: nn.Conv2d, momentum: float):
        self.conv = conv
        self.momentum = momentum
        conv.register_buffer("act_absmax", torch.zeros(()), persistent=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        # A frozen layer (eval mode) keeps its range, but takes one if it has none yet (a
        # --qat phase 2 started from a phase-1 checkpoint trained without --qat).
        if conv.training or not bool(conv.act_absmax > 0):
            with torch.no_grad():
                batch = x.detach().abs().amax()
                seen = conv.act_absmax > 0
                conv.act_absmax.copy_(torch.where(seen, (1 - self.momentum) * conv.act_absmax + self.momentum * batch, batch))
        scale = (conv.act_absmax / QMAX).clamp_min(1e-8).float()
        xq = torch.fake_quantize_per_tensor_affine(x, scale, torch.zeros((), dtype=torch.int32), -QMAX, QMAX)
        w = conv.weight
        wscale = (w.detach().abs().flatten(1).amax(1) / QMAX).clamp_min(1e-12).float()
        wq = torch.fake_quantize_per_channel_affine(w, wscale, torch.zeros_like(wscale, dtype=torch.int32), 0, -QMAX, QMAX)
        return conv._conv_forward(xq, wq, conv.bias)


def enable_fake_quant(model: nn.Module, momentum: float = 0.05) -> int:
    """Simulate INT8 at every convolution of ``model`` (in place); returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and not hasattr(module, "act_absmax"):
            module.forward = _ConvFakeQuant(module, momentum)
            count += 1
    return count


def disable_fake_quant(model: nn.Module) -> None:
    """Back to plain FP32 convolutions (the weights are unchanged by fake quantisation)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and "forward" in module.__dict__:
            del module.forward
            del module.act_absmax


def fake_quant_ranges(model: nn.Module) -> dict[str, float]:
    """Each fake-quantised convolution's activation range, by module name (checkpointed,
    so a resumed run continues bit for bit; empty for a plain model). Convolutions whose
    forward never ran have none: PGF's spatial bias is applied inside ``pgf_fuse``, the
    fused operator's reference, so its input range is left to calibration."""
    return {name: float(m.act_absmax) for name, m in model.named_modules() if isinstance(m, nn.Conv2d) and getattr(m, "act_absmax", 0) > 0}


def load_fake_quant_ranges(model: nn.Module, ranges: dict[str, float]) -> None:
    modules = dict(model.named_modules())
    for name, value in ranges.items():
        modules[name].act_absmax.fill_(value)
