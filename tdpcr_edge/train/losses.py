"""Losses of the two training phases."""

from __future__ import annotations

import torch
from torch.nn import functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from ..data.synthetic import THICKNESS_BINS

CLEAR_LIMIT = THICKNESS_BINS["clear"][1]


def masked_l1(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    w = valid[:, None].to(pred.dtype).expand_as(pred)
    return ((pred - target).abs() * w).sum() / w.sum().clamp_min(1.0)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """L1 + weight * (1 - SSIM): L1 for radiometry, SSIM for the texture that segmentation needs."""
    ssim = structural_similarity_index_measure(pred, target, data_range=1.0)
    return masked_l1(pred, target, valid) + ssim_weight * (1.0 - ssim)


def prompt_targets(cloud: torch.Tensor, prompts: int, size: tuple[int, int]) -> torch.Tensor:
    """Thickness quantised into ``prompts`` degradation states: 0 is clear sky, then equal
    steps up to opaque cloud, at the resolution of one PGF scale."""
    t = F.adaptive_avg_pool2d(cloud[:, None], size)[:, 0]
    level = 1 + torch.floor((t - CLEAR_LIMIT) / ((1.0 - CLEAR_LIMIT) / (prompts - 1))).long()
    return torch.where(t < CLEAR_LIMIT, torch.zeros_like(level), level.clamp(1, prompts - 1))


def prompt_loss(prompt_logits: list[torch.Tensor], cloud: torch.Tensor) -> torch.Tensor:
    """Optional supervision of the degradation prompt with the cloud-thickness map."""
    losses = [F.cross_entropy(lg, prompt_targets(cloud, lg.shape[1], lg.shape[-2:])) for lg in prompt_logits]
    return torch.stack(losses).mean()


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, ignore_index=255)


def reliance_loss(reliance_maps: list[torch.Tensor], cloud: torch.Tensor) -> torch.Tensor:
    """Supervision of PGF's gate: at every scale, the channel-mean gate (SAR reliance)
    should follow the cloud thickness, so SAR flows in where the optical is corrupted and
    the runtime's confidence map means what it says."""
    losses = []
    for rel in reliance_maps:
        target = F.adaptive_avg_pool2d(cloud[:, None], rel.shape[-2:])
        losses.append(F.binary_cross_entropy(rel.clamp(1e-6, 1 - 1e-6), target))
    return torch.stack(losses).mean()


def consistency_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL divergence between two class predictions of the same pixels (logits
    N x K x H x W), per pixel; each side is pulled towards the other's detached prediction."""
    la, lb = F.log_softmax(a, dim=1), F.log_softmax(b, dim=1)
    pixels = a.shape[0] * a.shape[2] * a.shape[3]
    kl = F.kl_div(la, lb.detach(), log_target=True, reduction="sum") + F.kl_div(lb, la.detach(), log_target=True, reduction="sum")
    return 0.5 * kl / pixels


def cloud_adaptive_loss(pred: torch.Tensor, target: torch.Tensor, cloudy: torch.Tensor, cloud: torch.Tensor, valid: torch.Tensor):
    """DSen2-CR's cloud-adaptive regularised loss: under cloud the prediction is pulled to the
    clear target, elsewhere to the cloudy input it should keep, plus an L1 to the target."""
    m = cloud[:, None].to(pred.dtype)
    adaptive = m * (pred - target) + (1 - m) * (pred - cloudy)
    w = valid[:, None].to(pred.dtype).expand_as(pred)
    return (adaptive.abs() * w).sum() / w.sum().clamp_min(1.0) + masked_l1(pred, target, valid)


def gaussian_nll(mean: torch.Tensor, variance: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """UnCRtainTS's negative log-likelihood of the target under the predicted per-band Gaussian."""
    nll = F.gaussian_nll_loss(mean, target, variance, reduction="none", full=False)
    w = valid[:, None].to(mean.dtype).expand_as(mean)
    return (nll * w).sum() / w.sum().clamp_min(1.0)


def _joint(outputs: dict, b: dict, opts) -> torch.Tensor:
    loss = reconstruction_loss(outputs["reconstruction"].float(), b["clear"], b["valid"])
    if outputs.get("prompt_logits") and opts.prompt_weight > 0:
        loss = loss + opts.prompt_weight * prompt_loss([p.float() for p in outputs["prompt_logits"]], b["cloud"])
    if outputs.get("reliance_maps") and opts.reliance_weight > 0:
        loss = loss + opts.reliance_weight * reliance_loss([r.float() for r in outputs["reliance_maps"]], b["cloud"])
    return loss


# Phase 1 (reconstruction) losses by name: an architecture's row in model.registry names its own.
LOSSES = {
    # TDP-CR's: L1 + SSIM, with the prompt and the SAR reliance supervised by cloud thickness where the model has them
    "joint": _joint,
    "carl": lambda outputs, b, opts: cloud_adaptive_loss(
        outputs["reconstruction"].float(), b["clear"], b["optical"], b["cloud"], b["valid"]
    ),
    "gaussian-nll": lambda outputs, b, opts: gaussian_nll(
        outputs["reconstruction"].float(), outputs["uncertainty"].float(), b["clear"], b["valid"]
    ),
    "l1": lambda outputs, b, opts: masked_l1(outputs["reconstruction"].float(), b["clear"], b["valid"]),
}
