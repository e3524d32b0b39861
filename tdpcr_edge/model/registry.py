"""The architectures the toolkit trains, exports, benchmarks and streams, and their
configurations, without torch (the runtime and the command line read them where torch is not
installed). One row per architecture, one module that builds it. A row says what the rest of
the toolkit must know: its sizes, the outputs it produces, its training loss, whether the
TDP_PGF plugin applies, the normalisation its inputs follow and the stride its inputs must be
a multiple of. ``register`` adds one (an extension point like the backend registry)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable

from ..contract import OUTPUTS as CONTRACT_OUTPUTS
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
    arch: str = "tdpcr"  # a row of model.registry; checkpoints written before it existed are TDP-CR's
    heads: int = 0  # attention heads (architectures with attention)
    window: int = 0  # attention window in pixels of the attended feature map

    @property
    def multiple(self) -> int:
        """Input height and width must be a multiple of this (the architecture's stride)."""
        return get_arch(self.arch).multiple(self)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})


FUSIONS = ("pgf", "concat")  # concat: plain concatenation, the ablation's baseline


# Every output a model may have, in the order runners and the stream hand them on.
OUTPUTS = CONTRACT_OUTPUTS


@dataclass(frozen=True)
class Architecture:
    name: str
    summary: str
    module: str  # imported when the model is built: it needs torch
    cls: str
    configs: dict[str, ModelConfig]
    outputs: tuple[str, ...]
    loss: str  # a name in train.losses.LOSSES
    plugin: bool  # whether TDP_PGF plugin nodes apply to its graph
    multiple: Callable[[ModelConfig], int] = lambda c: 1
    aliases: dict[str, str] = field(default_factory=dict)  # other names of a size (small/full for every row)
    # Window attention: its partition needs height and width declared as multiples of the
    # stride for torch.export to trace the graph once (export.onnx_graph).
    windowed: bool = False

    @property
    def segments(self) -> bool:
        return "segmentation" in self.outputs

    def sizes(self) -> list[str]:
        return [*self.configs, *self.aliases]

    def config(self, size: str, **overrides) -> ModelConfig:
        key = self.aliases.get(size, size)
        if key not in self.configs:
            raise ConfigError(f"unknown config {size!r} of {self.name}: choose one of {', '.join(self.sizes())}")
        return replace(self.configs[key], **overrides)

    def build(self, config: ModelConfig):
        import importlib

        return getattr(importlib.import_module(self.module), self.cls)(config)


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    bad = [o for o in arch.outputs if o not in OUTPUTS]
    if bad or "reconstruction" not in arch.outputs:
        raise ConfigError(f"architecture {arch.name}: outputs must include reconstruction and come from {', '.join(OUTPUTS)}")
    _REGISTRY[arch.name] = arch
    return arch


def names() -> list[str]:
    return list(_REGISTRY)


def get_arch(name: str) -> Architecture:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}: choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get_config(name: str, arch: str = "tdpcr", **overrides) -> ModelConfig:
    """The ``name`` size of architecture ``arch``, with ``overrides``. TDP-CR with concatenation
    fusion is the ``tdpcr-concat`` architecture, whichever way it is asked for; a baseline has
    no fusion to choose."""
    fusion = overrides.pop("fusion", None)
    if fusion is not None and fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {fusion!r}: choose {' or '.join(FUSIONS)}")
    if fusion is not None and arch not in ("tdpcr", "tdpcr-concat"):
        raise ConfigError(f"--fusion chooses TDP-CR's fusion; {arch} has none: leave it out")
    if fusion is not None:
        arch = "tdpcr" if fusion == "pgf" else "tdpcr-concat"
    return get_arch(arch).config(name, **overrides)


def outputs_of(config: ModelConfig | dict) -> tuple[str, ...]:
    """The outputs a network of ``config`` produces, in ``OUTPUTS`` order: its architecture's,
    less the SAR reliance where the fusion is not PGF (the ablation's concatenation)."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    outputs = get_arch(config.arch).outputs
    return tuple(o for o in OUTPUTS if o in outputs and not (o == "reliance" and config.fusion != "pgf"))


def model_label(config: ModelConfig | dict) -> str:
    """A model's name in reports: its architecture and size (``glfcr-small``)."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return f"{config.arch}-{config.name}"


def all_sizes() -> list[str]:
    """Every size any architecture has (the --config choices)."""
    return list(dict.fromkeys(s for a in _REGISTRY.values() for s in a.sizes()))


def _unet_multiple(c: ModelConfig) -> int:
    return 2 ** (len(c.widths) - 1)


_TDPCR_SIZES = {
    # Trains on two CPU cores in minutes; the shipped checkpoint.
    "tiny": ModelConfig("tiny", widths=(16, 32, 64), blocks=(1, 1, 1), prompts=6),
    # Near the paper's scale: about 15% of the heavy cloud-removal baselines' parameters.
    "base": ModelConfig("base", widths=(24, 48, 96, 192), blocks=(1, 2, 2, 2), prompts=8),
}
_SMALL_FULL = {"small": "tiny", "full": "base"}


def _baseline(name: str, widths: tuple, blocks: tuple, arch: str, **kw) -> ModelConfig:
    """A baseline's size: no prompts, adapters or fusion choice (those are TDP-CR's)."""
    return ModelConfig(name, widths=widths, blocks=blocks, arch=arch, adapter_rank=0, prompts=1, fusion="none", **kw)


register(
    Architecture(
        "tdpcr",
        "TDP-CR: prompt-guided SAR-optical fusion, joint cloud removal and land-cover segmentation",
        "tdpcr_edge.model.tdpcr",
        "TDPCR",
        _TDPCR_SIZES,
        ("reconstruction", "segmentation", "reliance"),
        loss="joint",
        plugin=True,
        multiple=_unet_multiple,
        aliases=_SMALL_FULL,
    )
)
register(
    Architecture(
        "tdpcr-concat",
        "TDP-CR with concatenation fusion: the joint multi-task competitor at TDP-CR's size",
        "tdpcr_edge.model.tdpcr",
        "TDPCR",
        {k: replace(c, fusion="concat", arch="tdpcr-concat") for k, c in _TDPCR_SIZES.items()},
        ("reconstruction", "segmentation"),
        loss="joint",
        plugin=False,
        multiple=_unet_multiple,
        aliases=_SMALL_FULL,
    )
)
register(
    Architecture(
        "dsen2cr",
        "DSen2-CR: a deep residual network at full resolution (Meraner et al., ISPRS 2020)",
        "tdpcr_edge.model.arch.dsen2cr",
        "DSen2CR",
        {
            # widths: (feature width,), blocks: (residual blocks,)
            "full": _baseline("full", (256,), (16,), "dsen2cr"),
            "small": _baseline("small", (32,), (4,), "dsen2cr"),
        },
        ("reconstruction",),
        loss="carl",
        plugin=False,
    )
)
register(
    Architecture(
        "uncrtaints",
        "UnCRtainTS, mono-temporal: MBConv blocks at full resolution with a per-band variance (Ebel et al., CVPRW 2023)",
        "tdpcr_edge.model.arch.uncrtaints",
        "UnCRtainTS",
        {
            # widths: (feature width,), blocks: (encoder MBConvs, decoder MBConvs)
            "full": _baseline("full", (128,), (1, 5), "uncrtaints"),
            "small": _baseline("small", (32,), (1, 2), "uncrtaints"),
        },
        ("reconstruction", "uncertainty"),
        loss="gaussian-nll",
        plugin=False,
    )
)
register(
    Architecture(
        "glfcr",
        "GLF-CR: two-stream window attention with SAR-guided dynamic filtering (Xu et al., ISPRS 2022)",
        "tdpcr_edge.model.arch.glfcr",
        "GLFCR",
        {
            # widths: (feature width, dense growth), blocks: (residual dense blocks, layers per block)
            "full": _baseline("full", (96, 48), (6, 5), "glfcr", heads=8, window=8),
            "small": _baseline("small", (24, 12), (2, 3), "glfcr", heads=2, window=8),
        },
        ("reconstruction",),
        loss="l1",
        plugin=False,
        # pixel-unshuffled by 2, then windows of `window` pixels
        multiple=lambda c: 2 * c.window,
        windowed=True,
    )
)
