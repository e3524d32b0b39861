"""TDP-CR network and its Prompt-Guided Fusion module. The network needs torch; its
configurations (``model.config``) do not, so names load when first used."""

from __future__ import annotations

from ..lazy import lazy_names

_LAZY = {
    "CONFIGS": "config",
    "ModelConfig": "config",
    "get_config": "config",
    "TDPCR": "tdpcr",
    "build_model": "tdpcr",
    "PromptGuidedFusion": "pgf",
    "ConcatFusion": "pgf",
    "pgf_fuse": "pgf",
}

__all__ = list(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
