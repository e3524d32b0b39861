"""Checkpoint I/O. A checkpoint is self-describing: weights plus the model config, the
normalisation, the class legend and the training position, so nothing about how to feed
the model is ever assumed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..contract import default_checkpoint_path
from ..data.normalize import Normalization
from ..errors import CheckpointError
from ..io_utils import atomic_path
from ..model import ModelConfig, Network, build_model

FORMAT = "tdpcr-edge-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict
    normalization: Normalization
    classes: list[str]
    colors: list[tuple[int, int, int]]
    phase: int = 1
    step: int = 0
    training: dict = field(default_factory=dict)  # optimizer and scheduler state, history
    path: Path | None = None
    # Quantisation-aware training: each convolution's INT8 activation range (train.qat),
    # which ``build`` also applies as a clip; empty for a model trained in plain FP32.
    qat_ranges: dict = field(default_factory=dict)

    @property
    def qat(self) -> bool:
        return bool(self.qat_ranges)

    def build(self) -> Network:
        model = build_model(self.config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise CheckpointError(
                f"{self.path}: weights do not fit config {self.config.name!r} ({first}); re-train or pick the matching config"
            ) from exc
        if self.qat_ranges:
            from .qat import clip_activations

            clip_activations(model, self.qat_ranges)  # what the run trained: see train.qat
        return model.eval()


def save_checkpoint(path: str | Path, ckpt: Checkpoint, model: torch.nn.Module | None = None, slim: bool = False) -> None:
    """Write atomically. ``slim`` drops the optimizer state (for shipping)."""
    state = model.state_dict() if model is not None else ckpt.state_dict
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": ckpt.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state.items()},
        "normalization": ckpt.normalization.to_dict(),
        "classes": list(ckpt.classes),
        "colors": [list(c) for c in ckpt.colors],
        "phase": ckpt.phase,
        "step": ckpt.step,
        "training": {} if slim else ckpt.training,
        "qat_ranges": dict(ckpt.qat_ranges),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    if path is None and not default_checkpoint_path().is_file():
        raise CheckpointError(
            f"{default_checkpoint_path()}: the shipped checkpoint is missing from this installation; reinstall tdpcr-edge or pass "
            "--checkpoint"
        )
    path = Path(path) if path is not None else default_checkpoint_path()
    if not path.is_file():
        raise CheckpointError(
            f"{path}: checkpoint not found; train one with `tdpcr-edge train` or leave --checkpoint out for the shipped model"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason}); re-train or copy it again") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tdpcr-edge checkpoint (no '{FORMAT}' header); pass a file written by `tdpcr-edge train`")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload['version']} is newer than this tdpcr-edge reads ({VERSION}); upgrade tdpcr-edge"
        )
    try:
        return Checkpoint(
            config=ModelConfig.from_dict(payload["config"]),
            state_dict=payload["state_dict"],
            normalization=Normalization.from_dict(payload["normalization"]),
            classes=list(payload["classes"]),
            colors=[tuple(c) for c in payload["colors"]],
            phase=int(payload["phase"]),
            step=int(payload["step"]),
            training=payload.get("training", {}),
            path=path,
            qat_ranges={str(k): float(v) for k, v in payload.get("qat_ranges", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: checkpoint is missing or has malformed field {exc}; re-train it") from exc


def init_path(init) -> Path:
    """``--init``: a checkpoint's path, or ``shipped`` for the shipped checkpoint."""
    if str(init) == "shipped":
        return default_checkpoint_path()
    return Path(init)


def check_resumable(state: Checkpoint, config, qat: bool, path: Path) -> None:
    """A run folder's checkpoint resumes only the same run: the same model config, and QAT
    or not as it started; anything else is one line naming the folder's checkpoint."""
    if state.config != config:
        theirs, ours = state.config.to_dict(), config.to_dict()
        diff = ", ".join(f"{k} {theirs.get(k)} (this run: {ours.get(k)})" for k in ours if theirs.get(k) != ours.get(k))
        raise CheckpointError(f"{path}: holds another run ({diff}); use another --out or --no-resume")
    if state.qat != qat:
        kind = "a quantisation-aware" if state.qat else "a plain FP32"
        raise CheckpointError(f"{path}: holds {kind} run; resume it {'with' if state.qat else 'without'} --qat, or use another --out")
