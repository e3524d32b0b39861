"""TDP-CR network and its Prompt-Guided Fusion module."""

from .pgf import ConcatFusion, PromptGuidedFusion, pgf_fuse
from .tdpcr import CONFIGS, TDPCR, ModelConfig, build_model, get_config

__all__ = ["CONFIGS", "TDPCR", "ModelConfig", "build_model", "get_config", "PromptGuidedFusion", "ConcatFusion", "pgf_fuse"]
