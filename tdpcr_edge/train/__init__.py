"""Training: two-phase, parameter-efficient, on one device or many (torch.distributed). The
options (``train.options``) need no torch, so names load when first used."""

from __future__ import annotations

import importlib

_LAZY = {"Checkpoint": "checkpoint", "default_checkpoint_path": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
         "TrainOptions": "options", "check_options": "options", "phases": "options", "train": "trainer"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
