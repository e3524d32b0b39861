"""Two-phase training (DESIGN section 0).

Phase 1 learns reconstruction: everything but the segmentation head and the adapters,
with L1 + SSIM and, for PGF, the degradation prompt and the gate's SAR reliance both
supervised by cloud thickness.
Phase 2 is the parameter-efficient semantic phase: encoders, PGF, decoder and the
reconstruction head are frozen (batch-norm statistics included); only the segmentation
head and the low-rank multi-scale adapters beside the decoder train, on cross-entropy.
Because the adapters sit on a side branch, phase 2 leaves the reconstruction bit-identical;
DESIGN's light reconstruction-consistency term has nothing left to protect and is dropped
(with adapters inside the shared decoder it cost 1 to 2 dB PSNR in our first runs).

With ``qat``, every convolution trains with the INT8 export's rounding simulated (train.qat)
in both phases; in the second half of each phase the INT8 ranges of the layers it trains are
learned too, and the ranges are checkpointed with the weights. Phase 2 then trains the
segmentation on two forwards of each batch, INT8 simulated and FP32, with a consistency term
between them: a head trained on INT8 features alone misreads FP32 ones (and the reverse),
and noise flips the ambiguous pixels, each flip more often away from the right class
(measured, README Export); the term makes the two precisions agree.

Every ``save_every`` steps the run is checkpointed atomically; a run restarted with the
same output folder continues where it stopped, on the same batches. When phase 1 ends its
model is kept as ``phase1.pt``, the ``--init`` of phase-2 variants.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from ..data.normalize import Normalization
from ..data.sources import BatchSource, SyntheticSource, open_source
from ..errors import CheckpointError, ConfigError
from ..evaluate import evaluate_scenes
from ..io_utils import write_json
from ..model import TDPCR, get_config
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .losses import consistency_loss, prompt_loss, reconstruction_loss, reliance_loss, segmentation_loss
from .qat import enable_fake_quant, fake_quant_ranges, learn_ranges, load_fake_quant_ranges, range_parameters, restart_ranges, set_rounding


@dataclass
class TrainOptions:
    out: Path
    config: str = "tiny"
    fusion: str = "pgf"
    data: str = "synthetic"
    phase: str = "both"  # "1", "2" or "both"
    steps: int = 1500  # per phase
    batch: int = 8
    patch: int = 64
    lr: float = 2e-3
    seed: int = 0
    prompt_weight: float = 0.1
    # Gate supervision (BCE of each scale's reliance against thickness). Off: at an equal
    # budget it cost 0.4 dB thick-cloud PSNR and 21 mIoU points (README, fusion ablation).
    reliance_weight: float = 0.0
    save_every: int = 100
    val_scenes: int = 8
    val_size: int = 128
    resume: bool = True
    init: Path | None = None  # a phase-1 checkpoint to start phase 2 from
    qat: bool = False  # simulate the INT8 export's rounding while training (train.qat)
    # With qat: the learned INT8 ranges' learning rate, relative to --lr (they are logarithms;
    # at 1x they barely move in half a phase), and the weight of phase 2's consistency term.
    range_lr: float = 10.0
    consistency_weight: float = 1.0


StepCallback = Callable[[int, int, int, float], None]  # phase, step, steps, loss


def _phases(phase: str) -> list[int]:
    try:
        return {"1": [1], "2": [2], "both": [1, 2]}[str(phase)]
    except KeyError:
        raise ConfigError(f"unknown --phase {phase!r}: choose 1, 2 or both") from None


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int = 50) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _set_phase_mode(model: TDPCR, phase: int) -> None:
    """Train mode only where weights train, so frozen batch norms keep their statistics."""
    if phase == 1:
        model.train()
        model.segmentation_head.eval()
    else:
        model.eval()
        model.segmentation_head.train()
        model.adapters.train()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.phase_parameters(phase):
        p.requires_grad_(True)


def validation_scenes(source: BatchSource, count: int, size: int) -> list:
    """Held-out scenes: the validation stream of the synthetic world, never trained on."""
    if not isinstance(source, SyntheticSource):
        return []
    return SyntheticSource(source.seed, source.num_classes, source.norm, stream=1).scenes(count, size)


def train(opts: TrainOptions, on_step: StepCallback | None = None) -> dict:
    """Run the requested phases; return the metrics also written to ``out/metrics.json``."""
    phases = _phases(opts.phase)
    out = Path(opts.out)
    ckpt_path = out / "checkpoint.pt"
    norm = Normalization()
    torch.manual_seed(opts.seed)
    config = get_config(opts.config, fusion=opts.fusion)
    source = open_source(opts.data, norm, opts.seed, config.num_classes)
    # A data set brings its own classes, bands and SAR clip; the checkpoint records them.
    norm = getattr(source, "norm", norm)
    shape = {"num_classes": len(source.classes), "optical_bands": len(norm.optical_bands), "sar_bands": len(norm.sar_bands)}
    if any(getattr(config, k) != v for k, v in shape.items()):
        config = get_config(opts.config, fusion=opts.fusion, **shape)
    model = TDPCR(config)

    state = Checkpoint(config, {}, norm, source.classes, source.colors, phase=phases[0], step=0, training={"history": {}})
    if opts.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.config != config:
            raise CheckpointError(f"{ckpt_path}: holds a {state.config.name}/{state.config.fusion} run, not {config.name}/{config.fusion}; use another --out or --no-resume")
        if state.qat != opts.qat:
            kind = "a quantisation-aware" if state.qat else "a plain FP32"
            raise CheckpointError(f"{ckpt_path}: holds {kind} run; resume it {'with' if state.qat else 'without'} --qat, or use another --out")
        model.load_state_dict(state.state_dict)
    elif 2 in phases and 1 not in phases:
        init = load_checkpoint(opts.init) if opts.init else None
        if init is None or init.phase < 1:
            raise CheckpointError(f"{opts.init or ckpt_path}: phase 2 needs a phase-1 checkpoint; pass --init CKPT or run --phase both")
        model.load_state_dict(init.state_dict)
        state = Checkpoint(config, {}, init.normalization, init.classes, init.colors, phase=2, step=0, training={"history": {}}, qat_ranges=init.qat_ranges)
    history: dict = state.training.get("history", {})
    if opts.qat:
        enable_fake_quant(model)
        load_fake_quant_ranges(model, state.qat_ranges)
    val = validation_scenes(source, opts.val_scenes, opts.val_size)

    for phase in phases:
        if phase < state.phase:
            continue  # finished before the restart
        if phase > state.phase:
            state.phase, state.step, state.training = phase, 0, {"history": history}
        params = model.phase_parameters(phase)
        groups = [{"params": params}]
        if opts.qat:
            if state.step == 0:
                restart_ranges(model, params)
            # Learned INT8 steps, as logarithms: no weight decay pulling them towards a step of 1.
            groups.append({"params": range_parameters(model, params), "weight_decay": 0.0, "lr": opts.lr * opts.range_lr})
        optimizer = torch.optim.AdamW(groups, lr=opts.lr, weight_decay=1e-4)
        scheduler = _schedule(optimizer, opts.steps)
        if state.training.get("optimizer") and state.step > 0:
            try:
                optimizer.load_state_dict(state.training["optimizer"])
            except ValueError as exc:
                raise CheckpointError(f"{ckpt_path}: its optimizer state does not fit this version's training ({exc}); finish it with the version that started it, or use another --out") from exc
            scheduler.load_state_dict(state.training["scheduler"])
        record = history.setdefault(
            str(phase),
            {"steps": opts.steps, "trainable_params": sum(p.numel() for p in params), "total_params": sum(p.numel() for p in model.parameters()), "seconds": 0.0, "loss": []},
        )
        _set_phase_mode(model, phase)
        t0, step = time.perf_counter(), state.step
        while step < opts.steps:
            if opts.qat:  # ranges follow the batch maximum for half the phase, then learn
                learn_ranges(model, params if step >= opts.steps // 2 else [])
            b = source.batch(step if phase == 1 else step + 10_000_000, opts.batch, opts.patch)
            outputs = model(b["optical"], b["sar"])
            if phase == 2 and opts.qat:
                set_rounding(model, False)
                fp32 = model(b["optical"], b["sar"])["segmentation"]
                set_rounding(model, True)
                q = outputs["segmentation"]
                loss = 0.5 * (segmentation_loss(q, b["labels"]) + segmentation_loss(fp32, b["labels"]))
                loss = loss + opts.consistency_weight * consistency_loss(q, fp32)
            elif phase == 1:
                loss = reconstruction_loss(outputs["reconstruction"], b["clear"], b["valid"])
                if outputs["prompt_logits"] and opts.prompt_weight > 0:
                    loss = loss + opts.prompt_weight * prompt_loss(outputs["prompt_logits"], b["cloud"])
                if outputs["reliance_maps"] and opts.reliance_weight > 0:
                    loss = loss + opts.reliance_weight * reliance_loss(outputs["reliance_maps"], b["cloud"])
            else:
                loss = segmentation_loss(outputs["segmentation"], b["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            if step % 10 == 0 or step == opts.steps:
                record["loss"].append([step, round(loss_value, 5)])
            if on_step:
                on_step(phase, step, opts.steps, loss_value)
            if step % opts.save_every == 0 or step == opts.steps:
                record["seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                state.step = step
                state.training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "history": history}
                state.qat_ranges = fake_quant_ranges(model)
                save_checkpoint(ckpt_path, state, model)
        if val and "val" not in record:
            record["val"], _ = evaluate_scenes(model, val)
            _set_phase_mode(model, phase)
            save_checkpoint(ckpt_path, state, model)
        if phase == 1 and state.phase == 1:
            # Phase 2 freezes all of this, so phase-2 variants can start from the same phase 1
            # (`--phase 2 --init RUN/phase1.pt`) and end where `--phase both` would.
            save_checkpoint(out / "phase1.pt", state, model, slim=True)

    metrics = {"options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}, "config": config.to_dict(), "phases": history}
    save_checkpoint(out / "model.pt", state, model, slim=True)
    write_json(out / "metrics.json", metrics)
    return metrics
