"""Model configurations: sizes, bands and fusion of a TDP-CR network, without torch (the
runtime and the command line read them where torch is not installed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    name: str
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    prompts: int = 6
    optical_bands: int = 13
    sar_bands: int = 2
    num_classes: int = 6
    fusion: str = "pgf"  # "pgf" or "concat" (ablation)
    adapter_rank: int = 4

    @property
    def multiple(self) -> int:
        """Input height and width must be a multiple of this (one halving per extra scale)."""
        return 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


CONFIGS: dict[str, ModelConfig] = {
    # Trains on two CPU cores in minutes; the shipped checkpoint.
    "tiny": ModelConfig("tiny", widths=(16, 32, 64), blocks=(1, 1, 1), prompts=6),
    # Near the paper's scale: about 15% of the heavy cloud-removal baselines' parameters.
    "base": ModelConfig("base", widths=(24, 48, 96, 192), blocks=(1, 2, 2, 2), prompts=8),
}


FUSIONS = ("pgf", "concat")  # concat: plain concatenation, the ablation's baseline


def get_config(name: str, **overrides) -> ModelConfig:
    if name not in CONFIGS:
        raise ConfigError(f"unknown model config {name!r}: choose one of {', '.join(CONFIGS)}")
    if overrides.get("fusion", "pgf") not in FUSIONS:
        raise ConfigError(f"unknown fusion {overrides['fusion']!r}: choose {' or '.join(FUSIONS)}")
    return replace(CONFIGS[name], **overrides)
