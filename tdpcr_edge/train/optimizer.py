"""The optimiser of a training phase: AdamW over the phase's parameters (and, with QAT, their
learned INT8 steps), a warm-up then cosine learning rate, the mixed-precision scaler, all
restored from the checkpoint when a run resumes."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import CheckpointError
from .device import StepDevice
from .options import TrainOptions


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int = 50) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(groups: list[dict], opts: TrainOptions, dev: StepDevice, state, ckpt_path: Path):
    """Optimiser, schedule and scaler for ``groups``; restored from ``state.training`` when the
    run resumes mid-phase (a state from another version's training is refused in one line)."""
    optimizer = torch.optim.AdamW(groups, lr=opts.lr, weight_decay=1e-4)
    scheduler = _schedule(optimizer, opts.steps)
    scaler = dev.scaler()
    if state.training.get("optimizer") and state.step > 0:
        try:
            optimizer.load_state_dict(state.training["optimizer"])
        except ValueError as exc:
            raise CheckpointError(
                f"{ckpt_path}: its optimizer state does not fit this version's training ({exc}); finish it with the version that "
                "started it, or use another --out"
            ) from exc
        scheduler.load_state_dict(state.training["scheduler"])
        if state.training.get("scaler"):
            scaler.load_state_dict(state.training["scaler"])
    return optimizer, scheduler, scaler
