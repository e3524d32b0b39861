"""TDP-CR network and its Prompt-Guided Fusion module. The network needs torch; its
configurations (``model.config``) do not, so names load when first used."""

from __future__ import annotations

import importlib

_LAZY = {"CONFIGS": "config", "ModelConfig": "config", "get_config": "config", "TDPCR": "tdpcr", "build_model": "tdpcr",
         "PromptGuidedFusion": "pgf", "ConcatFusion": "pgf", "pgf_fuse": "pgf"}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
