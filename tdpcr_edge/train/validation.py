"""Validation during training: held-out samples scored every ``--val-every`` steps and at the
end of each phase, split over the ranks and merged on rank 0, the best model kept, and the
curves drawn.

The held-out set is the synthetic world's validation stream, or a data set's val split
(SEN12MS-CR's official val scenes, LuojiaSET-OSFCR's val list), or what ``--val-data``
names. A phase's best model is the one with the highest validation PSNR in phase 1 and the
highest mIoU in phase 2 (what each phase trains).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from ..data.normalize import Normalization
from ..data.sources import SyntheticSource
from ..data.specs import open_dataset, parse_spec
from ..errors import ConfigError, DataError
from ..scoring import model_outputs, score
from .distributed import World, gather

SYNTHETIC_VAL = 8  # held-out scenes of the synthetic world when --val-scenes is not given
KEY = {1: "psnr", 2: "miou"}


class Validation:
    """The held-out samples of a run, read lazily by index."""

    def __init__(self, source, data: str, val_data: str | None, count: int | None, size: int, norm: Normalization):
        self.norm, self.dataset, self.scenes = norm, None, None
        spec = val_data or data
        if spec == "synthetic":
            if not isinstance(source, SyntheticSource):
                raise ConfigError(
                    "--val-data synthetic: the synthetic world validates models trained on it only; name held-out data of "
                    "the training data's kind (its classes and bands)"
                )
            world = source
            self.scenes = SyntheticSource(world.seed, world.num_classes, norm, stream=1).scenes(count or SYNTHETIC_VAL, size)
            self.description = f"{len(self.scenes)} held-out synthetic scenes of {size} px"
            return
        kind, path, options = parse_spec(spec)
        if val_data is None:
            if kind not in ("sen12mscr", "luojia") or options.get("split", "train") != "train":
                # A folder or a pairs list holds nothing out, and a run on another split
                # than train may hold the val samples: validate only on what is named.
                self.description = "none (the training data has no val split apart; pass --val-data SPEC)"
                return
            spec = f"{kind}:{path}?" + urlencode({**options, "split": "val"})
            try:
                self.dataset = open_dataset(spec, split="val")
            except DataError as exc:  # a download without the val scenes: say so, train on
                self.description = f"none ({str(exc).split(': ', 1)[-1].split(';')[0]}; pass --val-data SPEC)"
                return
        else:
            self.dataset = open_dataset(spec, split="val")
        self.count = min(count or len(self.dataset), len(self.dataset))
        self.description = f"{self.count} samples of {self.dataset.description}"

    def __bool__(self) -> bool:
        return self.scenes is not None or self.dataset is not None

    def __len__(self) -> int:
        return len(self.scenes) if self.scenes is not None else self.count if self.dataset is not None else 0

    def shard(self, world: World):
        """This rank's share: every size-th sample from its rank on."""
        for i in range(world.rank, len(self), world.size):
            yield self.scenes[i] if self.scenes is not None else self.dataset.read(i, self.norm)

    def run(self, model, world: World) -> dict | None:
        """Scores on rank 0 (None on the others); every rank must call it."""
        ev = score(model_outputs(model), self.shard(world), model.config.num_classes).evaluation
        parts = gather(ev, world)
        if parts is None:
            return None
        # Merged into a shard that was scored itself: torchmetrics asks its metrics to have
        # been updated, not only merged into.
        parts = sorted(parts, key=lambda e: e.scenes == 0)
        for part in parts[1:]:
            parts[0].merge(part)
        return parts[0].result()


def summary(result: dict) -> dict:
    """The figures a curve follows: PSNR, thick-cloud PSNR (where cloud maps exist), mIoU."""
    model = result["model"]
    thick = result["bins"].get("thick", {}).get("model", {})
    return {"psnr": model.get("psnr"), "psnr_thick": thick.get("psnr"), "miou": model.get("miou")}


def better(phase: int, new: dict, best: dict | None) -> bool:
    key = KEY[phase]
    if new.get(key) is None:
        return False
    return best is None or best.get(key) is None or new[key] > best[key]


def check_every(val_every: int) -> None:
    if val_every < 0:
        raise ConfigError(f"--val-every must be 0 (at the end of each phase only) or more, got {val_every}")


def plot_curves(history: dict, path: Path) -> None:
    """Loss and validation curves per phase, beside metrics.json."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io_utils import atomic_path

    phases = sorted(history)
    fig, axes = plt.subplots(2, max(1, len(phases)), figsize=(5 * max(1, len(phases)), 6), squeeze=False)
    for col, phase in enumerate(phases):
        rec = history[phase]
        ax = axes[0][col]
        if rec.get("loss"):
            steps, loss = zip(*rec["loss"])
            ax.plot(steps, loss, lw=1, marker="." if len(steps) < 30 else None)
        ax.set_title(f"phase {phase}: training loss")
        ax.set_xlabel("step")
        ax = axes[1][col]
        curve = rec.get("val_curve", [])
        for key, label in (("psnr", "PSNR dB"), ("psnr_thick", "thick-cloud PSNR dB")):
            pts = [(c["step"], c[key]) for c in curve if c.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=label)
        ax.set_xlabel("step")
        ax.set_ylabel("dB")
        pts = [(c["step"], c["miou"]) for c in curve if c.get("miou") is not None]
        if pts:
            twin = ax.twinx()
            twin.plot(*zip(*pts), marker="s", color="tab:green", label="mIoU %")
            twin.set_ylabel("mIoU %")
            twin.legend(loc="lower right")
        if curve:
            ax.legend(loc="upper left")
        ax.set_title(f"phase {phase}: validation")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
