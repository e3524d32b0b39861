"""The networks: TDP-CR and its Prompt-Guided Fusion, and the baselines it is compared with
(``model.arch``), one row each in ``model.registry``. The networks need torch; the registry and
its configurations do not, so names load when first used."""

from __future__ import annotations

from ..lazy import lazy_names

_LAZY = {
    "ModelConfig": "registry",
    "get_config": "registry",
    "TDPCR": "tdpcr",
    "build_model": "base",
    "Network": "base",
    "get_arch": "registry",
    "PromptGuidedFusion": "pgf",
    "ConcatFusion": "pgf",
    "pgf_fuse": "pgf",
}

__all__ = list(_LAZY)

__getattr__ = lazy_names(__name__, _LAZY)
