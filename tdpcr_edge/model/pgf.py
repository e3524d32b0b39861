"""Prompt-Guided Fusion (PGF), the reference PyTorch implementation.

Formulation (docs/model.md; the paper names the parts, the equations are our reading):

    P = softmax_k(conv1x1(act(dwconv3x3([O, S]))))      degradation prompt weights, K x H x W
    Q = sum_k P_k * E_k                                 per-pixel prompt feature, E is K x C
    g = sigmoid(MLP(avgpool([O, S])))                   global channel context, C per image
    b = conv3x3(P)                                      local prompt-conditioned spatial bias
    A = sigmoid(g * Q + b)                              gate: how much SAR to let in
    F = O + A * (phi([O, S]) - O)                       fused features

phi is a 1 x 1 convolution, batch norm and ReLU over both modalities: where A -> 1 the
features become a learned SAR-optical mix (exactly the concatenation baseline's block),
where A -> 0 the optical features pass untouched. Our first reading of the paper had phi see
SAR alone; at an equal training budget that lost to plain concatenation under thick cloud
(docs/model.md, docs/experiments.md#fusion-ablations), because a per-channel blend of O and
phi(S) cannot mix the modalities the way the baseline's convolution can.

``pgf_fuse`` is the per-pixel part (the spatial bias b, then Q, A, F). It is kept as a
free function with plain tensor arguments because it is exactly what the fused CUDA kernel
and the TensorRT plugin replace: one pass that reads O, phi(S) and P and writes F and the
reliance map, with b computed from the 3 x 3 neighbourhood of P on the fly. The prompt
head, phi and the global context (a reduction and a tiny MLP) stay ordinary layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pgf_fuse(
    optical: torch.Tensor,
    sar_proj: torch.Tensor,
    prompt: torch.Tensor,
    bank: torch.Tensor,
    context: torch.Tensor,
    bias_weight: torch.Tensor,
    bias_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial bias, gate and fusion.

    optical, sar_proj: N x C x H x W; prompt: N x K x H x W; bank: K x C; context: N x C;
    bias_weight: 1 x K x 3 x 3 and bias_bias: 1, the spatial-bias convolution (zero
    padding). Returns the fused features (N x C x H x W) and the SAR reliance, the gate
    averaged over channels (N x 1 x H x W). These are the inputs and outputs of the fused
    kernel and of the TDP_PGF plugin.
    """
    bias = F.conv2d(prompt, bias_weight, bias_bias, padding=1)
    q = torch.einsum("nkhw,kc->nchw", prompt, bank)
    gate = torch.sigmoid(context[:, :, None, None] * q + bias)
    fused = optical + gate * (sar_proj - optical)
    return fused, gate.mean(dim=1, keepdim=True)


@torch.library.custom_op("tdpcr::pgf_fuse", mutates_args=())
def pgf_fuse_op(
    optical: torch.Tensor,
    sar_proj: torch.Tensor,
    prompt: torch.Tensor,
    bank: torch.Tensor,
    context: torch.Tensor,
    bias_weight: torch.Tensor,
    bias_bias: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pgf_fuse`` as one opaque operator, so ONNX export emits a single TDP_PGF node and
    torch.compile sees one call. The CUDA kernel registers itself for this op when built."""
    return pgf_fuse(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias)


@pgf_fuse_op.register_fake
def _(optical, sar_proj, prompt, bank, context, bias_weight, bias_bias):
    n, _, h, w = optical.shape
    return torch.empty_like(optical), optical.new_empty((n, 1, h, w))


class PromptGuidedFusion(nn.Module):
    """PGF at one scale. ``forward`` returns the fused features and, for the runtime and
    for prompt supervision, the prompt weights and the channel-mean gate (SAR reliance)."""

    def __init__(self, channels: int, prompts: int = 6, reduction: int = 4):
        super().__init__()
        c2 = 2 * channels
        self.prompts = prompts
        self.prompt_dw = nn.Conv2d(c2, c2, 3, padding=1, groups=c2)
        self.prompt_pw = nn.Conv2d(c2, prompts, 1)
        # Spread the initial bank so the K states start distinguishable.
        self.bank = nn.Parameter(torch.randn(prompts, channels) * 0.5)
        hidden = max(channels // reduction, 4)
        self.context = nn.Sequential(nn.Linear(c2, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))
        self.spatial_bias = nn.Conv2d(prompts, 1, 3, padding=1)
        self.sar_proj = nn.Sequential(nn.Conv2d(c2, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        # True routes the per-pixel part through the tdpcr::pgf_fuse operator (export with
        # plugin nodes, fused CUDA kernel); False keeps plain differentiable ops for training.
        self.fused_op = False

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        x = torch.cat([optical, sar], dim=1)
        logits = self.prompt_pw(F.relu(self.prompt_dw(x)))
        prompt = torch.softmax(logits, dim=1)
        context = torch.sigmoid(self.context(x.mean(dim=(2, 3))))
        fuse = pgf_fuse_op if self.fused_op else pgf_fuse
        b = self.spatial_bias
        fused, reliance = fuse(optical, self.sar_proj(x), prompt, self.bank, context, b.weight, b.bias)
        return {"fused": fused, "prompt_logits": logits, "reliance": reliance}


class ConcatFusion(nn.Module):
    """The ablation baseline: concatenate and mix with a 1x1 convolution, no gating."""

    def __init__(self, channels: int, prompts: int = 6, reduction: int = 4):
        super().__init__()
        self.mix = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, optical: torch.Tensor, sar: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"fused": self.mix(torch.cat([optical, sar], dim=1))}
