"""Training: two-phase, parameter-efficient, on one device or many (torch.distributed). The
options (``train.options``) need no torch, so names load when first used."""

from __future__ import annotations

from ..lazy import lazy_names

_LAZY = {
    "Checkpoint": "checkpoint",
    "default_checkpoint_path": "checkpoint",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "TrainOptions": "options",
    "check_options": "options",
    "phases": "options",
    "train": "trainer",
}

__all__ = list(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
