"""The training loss of one micro-batch, by phase (docs/training.md)."""

from __future__ import annotations

import torch

from ..model.registry import get_arch
from .losses import LOSSES, consistency_loss, segmentation_loss
from .options import TrainOptions
from .qat import set_rounding


def step_loss(net, model, phase: int, b: dict, opts: TrainOptions, autocast) -> torch.Tensor:
    """The loss of one micro-batch ``b``: phase 1 reconstruction (the architecture's own loss,
    ``losses.LOSSES``); phase 2
    segmentation, and with QAT the mean of the INT8-simulated and the FP32 forward's plus
    their consistency, so the two precisions agree. ``net`` runs the forward (DDP or compiled
    around ``model``); ``autocast`` is the step device's mixed-precision context."""
    with autocast():
        outputs = net(b["optical"], b["sar"])
        fp32 = None
        if phase == 2 and opts.qat:
            # The FP32 forward runs on the module itself: its gradient joins the DDP one
            # in the same backward.
            set_rounding(model, False)
            fp32 = model(b["optical"], b["sar"])["segmentation"].float()
            set_rounding(model, True)
    # Losses in FP32, whatever precision the forward ran in.
    if fp32 is not None:
        q = outputs["segmentation"].float()
        loss = 0.5 * (segmentation_loss(q, b["labels"]) + segmentation_loss(fp32, b["labels"]))
        return loss + opts.consistency_weight * consistency_loss(q, fp32)
    if phase == 1:
        return LOSSES[get_arch(model.config.arch).loss](outputs, b, opts)
    return segmentation_loss(outputs["segmentation"].float(), b["labels"])
