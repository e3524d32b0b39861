"""What ``tdpcr-edge train`` is asked to do, and the checks its options get before any work:
each numeric option in its range, the patch a multiple of the model's stride, the phases
known. A bad value is one line naming the option and what it takes (exit 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

AMP = ("off", "bf16", "fp16")  # mixed precision of a training step (train.device)


@dataclass
class TrainOptions:
    out: Path
    config: str = "small"  # every architecture's small size (TDP-CR's tiny)
    fusion: str = "pgf"
    arch: str = "tdpcr"  # a row of model.registry; with --init, the checkpoint's
    data: str = "synthetic"
    phase: str = "both"  # "1", "2" or "both"
    steps: int = 1500  # per phase
    batch: int = 8  # the global batch, whatever the world size and accumulation
    patch: int = 64
    lr: float = 2e-3
    seed: int = 0
    prompt_weight: float = 0.1
    # Gate supervision (BCE of each scale's reliance against thickness). Off: at an equal
    # budget it cost thick-cloud PSNR and much of the mIoU (docs/experiments.md#fusion-ablations).
    reliance_weight: float = 0.0
    save_every: int = 100
    val_scenes: int | None = None  # held-out samples: 8 synthetic scenes, or all of a data set's val split
    val_size: int = 128
    val_every: int = 0  # 0: validate at the end of each phase only
    val_data: str | None = None  # another held-out set than the training data's val split
    resume: bool = True
    init: Path | None = None  # phase 1: weights to fine-tune from; phase 2 alone: the phase-1 checkpoint
    bands: str | None = None  # optical bands: s2-l1c, s2-l2a, s2-rgbn or a list; None: the data's (or --init's)
    qat: bool = False  # simulate the INT8 export's rounding while training (train.qat)
    # With qat: the learned INT8 ranges' learning rate, relative to --lr (they are logarithms;
    # at 1x they barely move in half a phase), and the weight of phase 2's consistency term.
    range_lr: float = 10.0
    consistency_weight: float = 1.0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: str = "off"  # off, bf16, fp16
    compile: bool = False  # torch.compile the training step
    workers: int = 0  # DataLoader worker processes per training process
    prefetch: int = 4  # micro-batches each loader worker reads ahead
    accumulate: int = 1  # micro-batches per optimiser step and process
    sync_bn: bool = False  # SyncBatchNorm across the processes (CUDA)
    deterministic: bool = False  # torch.use_deterministic_algorithms

    @property
    def total_steps(self) -> int:
        """Optimisation steps over every phase this run trains."""
        return self.steps * len(phases(self.phase, self.arch))

    def model_config(self, **overrides):
        """The configuration of ``--arch``/``--config`` (``--fusion`` where it was changed)."""
        from ..model import get_config

        fusion = {"fusion": self.fusion} if self.fusion != "pgf" or self.arch == "tdpcr" else {}
        return get_config(self.config, self.arch, **fusion, **overrides)


def phases(phase: str, arch: str = "tdpcr") -> list[int]:
    """The phases ``--phase`` asks for; an architecture without segmentation has phase 1 alone."""
    from ..model.registry import get_arch

    try:
        wanted = {"1": [1], "2": [2], "both": [1, 2]}[str(phase)]
    except KeyError:
        raise ConfigError(f"unknown --phase {phase!r}: choose 1, 2 or both") from None
    if get_arch(arch).segments:
        return wanted
    if wanted == [2]:
        raise ConfigError(f"--phase 2 trains segmentation, which {arch} does not have; use --phase 1")
    return [1]


# option -> (smallest value, whether the smallest itself is refused)
_LIMITS = {
    "steps": (1, False),
    "batch": (1, False),
    "patch": (1, False),
    "lr": (0.0, True),
    "seed": (0, False),
    "save_every": (1, False),
    "val_every": (0, False),
    "val_size": (1, False),
    "workers": (0, False),
    "prefetch": (1, False),
    "accumulate": (1, False),
    "val_scenes": (0, False),
    "prompt_weight": (0.0, False),
    "reliance_weight": (0.0, False),
    "range_lr": (0.0, True),
    "consistency_weight": (0.0, False),
}


def check_options(opts: TrainOptions) -> None:
    """Refuse, before any work, what would fail later with a traceback or train nothing."""
    for name, (low, open_) in _LIMITS.items():
        value = getattr(opts, name)
        if value is None:
            continue
        if value < low or (open_ and value == low):
            flag = "--" + name.replace("_", "-").replace("val-scenes", "val-samples")
            raise ConfigError(f"{flag} {value}: must be {'greater than' if open_ else 'at least'} {low}")
    phases(opts.phase, opts.arch)
    multiple = opts.model_config().multiple
    for flag, value in (("--patch", opts.patch), ("--val-size", opts.val_size)):
        if value % multiple:
            raise ConfigError(f"{flag} {value} is not a multiple of {multiple}, which the {opts.arch} {opts.config} model needs")


def with_init_arch(opts: TrainOptions) -> TrainOptions:
    """Training from ``--init`` trains the checkpoint's architecture: ``--arch`` left at its
    default takes it, another is refused."""
    if not opts.init:
        return opts
    from dataclasses import replace

    from .checkpoint import init_path, load_checkpoint

    arch = load_checkpoint(init_path(opts.init)).config.arch
    if opts.arch not in ("tdpcr", arch):
        raise ConfigError(f"--init {opts.init} is a {arch} checkpoint, --arch {opts.arch}: leave --arch out or pass an {opts.arch} one")
    return replace(opts, arch=arch)
