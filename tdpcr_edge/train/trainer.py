"""Two-phase training (docs/training.md).

Phase 1 learns reconstruction with the architecture's loss (for TDP-CR: L1 + SSIM, the
prompt and the gate's SAR reliance supervised by cloud thickness); a baseline has no phase 2.
Phase 2 is the parameter-efficient semantic phase: encoders, PGF, decoder and the
reconstruction head are frozen (batch-norm statistics included); only the segmentation
head and the low-rank multi-scale adapters beside the decoder train, on cross-entropy.
Because the adapters sit on a side branch, phase 2 leaves the reconstruction bit-identical;
the light reconstruction-consistency term of our first reading of the paper has nothing left
to protect and is dropped (adapters inside the shared decoder would change the reconstruction
in phase 2, which is what such a term guards against: docs/training.md).

With ``qat``, every convolution trains with the INT8 export's rounding simulated (train.qat)
in both phases; in the second half of each phase the INT8 ranges of the layers it trains are
learned too, and the ranges are checkpointed with the weights. Phase 2 then trains the
segmentation on two forwards of each batch, INT8 simulated and FP32, with a consistency term
between them: a head trained on INT8 features alone misreads FP32 ones (and the reverse),
and noise flips the ambiguous pixels, each flip more often away from the right class
(measured: docs/export.md#quantisation-aware-training); the term makes the two precisions agree.

Every ``save_every`` steps the run is checkpointed atomically; a run restarted with the
same output folder continues where it stopped, on the same batches. When phase 1 ends its
model is kept as ``phase1.pt``, the ``--init`` of phase-2 variants.

Scale (docs/training.md): the step runs on ``--device`` with optional mixed precision; the
samples come from a DataLoader (train.samples) whose batches depend on the seed and the step
only; under torchrun the processes share each global batch (DDP, train.distributed), so the
world size changes the speed, not the result, and a run resumes at any world size.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel

from ..data.bands import parse_bands, preset_name
from ..data.normalize import Normalization
from ..data.sources import open_source
from ..errors import CheckpointError, ConfigError
from ..io_utils import write_json
from ..model import build_model
from . import distributed as dist
from .checkpoint import Checkpoint, check_resumable, init_path, load_checkpoint, save_checkpoint
from .device import StepDevice, step_device
from .optimizer import make_optimizer
from .options import TrainOptions, check_options, with_init_arch
from .options import phases as _phases
from .qat import (
    all_steps,
    enable_fake_quant,
    fake_quant_ranges,
    learn_ranges,
    load_fake_quant_ranges,
    range_parameters,
    restart_ranges,
)
from .samples import MicroBatches, SampleStream, check_labels, checked, loader, micro_batch
from .step_loss import step_loss
from .validation import Validation, better, plot_curves, summary

StepCallback = Callable[[int, int, int, float], None]  # phase, step, steps, loss
LOG_EVERY = 10  # steps between loss readings (each one waits for the device)


def train(opts: TrainOptions, on_step: StepCallback | None = None) -> dict:
    """Run the requested phases; return the metrics also written to ``out/metrics.json``.
    Under torchrun every process calls this; rank 0 writes the run folder."""
    opts = with_init_arch(opts)
    check_options(opts)
    phases = _phases(opts.phase, opts.arch)
    world = dist.from_env()
    dev = step_device(opts.device, opts.amp, world.local_rank if world.distributed else None)
    micro_batch(opts.batch, world.size, opts.accumulate)
    if opts.sync_bn and world.distributed and not dev.cuda:
        raise ConfigError("--sync-bn: torch's SyncBatchNorm runs on CUDA only; leave it out for CPU processes")
    if opts.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
        torch.use_deterministic_algorithms(True)
    with dist.process_group(world, dev.device), dist.guarded(world, "during training"):
        return _Run(opts, world, dev, on_step).run(phases)


class _Run:
    def __init__(self, opts: TrainOptions, world: dist.World, dev: StepDevice, on_step: StepCallback | None):
        self.opts, self.world, self.dev, self.on_step = opts, world, dev, on_step
        self.out = Path(opts.out)
        self.ckpt_path = self.out / "checkpoint.pt"

    def setup(self, phases: list[int]) -> None:
        opts = self.opts
        torch.manual_seed(opts.seed)
        init = load_checkpoint(init_path(opts.init)) if opts.init else None
        bands = parse_bands(opts.bands) if opts.bands else (init.normalization.optical_bands if init else None)
        norm = Normalization() if bands is None else Normalization(optical_bands=bands)
        config = init.config if init else opts.model_config()
        source = open_source(opts.data, norm, opts.seed, config.num_classes)
        # A data set brings its own classes, bands and SAR clip; the checkpoint records them.
        norm = getattr(source, "norm", norm)
        if bands is not None and norm.optical_bands != bands:
            # The data set's files are read for these bands by name (data.inputs).
            norm = replace(norm, optical_bands=bands)
            source.norm = source.dataset.norm = norm
        if 2 in phases:
            check_labels(source, opts.data)
        shape = {"num_classes": len(source.classes), "optical_bands": len(norm.optical_bands), "sar_bands": len(norm.sar_bands)}
        if any(getattr(config, k) != v for k, v in shape.items()):
            config = replace(config, **shape) if init else opts.model_config(**shape)
        model = build_model(config)
        state = Checkpoint(config, {}, norm, source.classes, source.colors, phase=phases[0], step=0, training={"history": {}})
        if opts.resume and self.ckpt_path.exists():
            state = load_checkpoint(self.ckpt_path)
            check_resumable(state, config, opts.qat, self.ckpt_path)
            model.load_state_dict(state.state_dict)
        elif 2 in phases and 1 not in phases:
            if init is None or init.phase < 1:
                raise CheckpointError(
                    f"{opts.init or self.ckpt_path}: phase 2 needs a phase-1 checkpoint; pass --init CKPT or run --phase both"
                )
            model.load_state_dict(init.state_dict)
            state = Checkpoint(
                config,
                {},
                init.normalization,
                init.classes,
                init.colors,
                phase=2,
                step=0,
                training={"history": {}},
                qat_ranges=init.qat_ranges,
            )
        elif init is not None:
            # Fine-tuning: every weight whose shape fits (a head for another class count starts afresh).
            if init.normalization.optical_bands != norm.optical_bands:
                raise CheckpointError(
                    f"{opts.init}: trained on {preset_name(init.normalization.optical_bands)}, this run on "
                    f"{preset_name(norm.optical_bands)}; "
                    "fine-tune on data with the checkpoint's bands, or train from scratch with --bands"
                )
            own = model.state_dict()
            fits = {k: v for k, v in init.state_dict.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(fits, strict=False)
            state.training["init"] = {"checkpoint": str(opts.init), "tensors": len(fits), "fresh": sorted(set(own) - set(fits))}
        model.to(self.dev.device, memory_format=torch.channels_last if self.dev.channels_last else torch.preserve_format)
        if opts.sync_bn and self.world.distributed:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if opts.qat:
            enable_fake_quant(model)
            load_fake_quant_ranges(model, state.qat_ranges)
        self.model, self.state, self.source, self.config = model, state, source, config
        self.history: dict = state.training.get("history", {})
        self.val = Validation(source, opts.data, opts.val_data, opts.val_scenes, opts.val_size, norm)

    def run(self, phases: list[int]) -> dict:
        self.setup(phases)
        state = self.state
        for phase in phases:
            if phase < state.phase:
                continue  # finished before the restart
            if phase > state.phase:
                state.phase, state.step, state.training = phase, 0, {"history": self.history}
            self.run_phase(phase)
        opts = self.opts
        metrics = {
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
            "config": self.config.to_dict(),
            "world_size": self.world.size,
            "device": str(self.dev.device),
            "amp": self.dev.amp,
            "data": self.source.dataset.description if hasattr(self.source, "dataset") else f"the synthetic world (seed {opts.seed})",
            "validation": self.val.description,
            "phases": self.history,
        }
        if self.world.main:
            save_checkpoint(self.out / "model.pt", state, self.model, slim=True)
            write_json(self.out / "metrics.json", metrics)
            plot_curves(self.history, self.out / "curves.png")
        dist.barrier(self.world)
        return metrics

    def run_phase(self, phase: int) -> None:
        opts, model, state, world = self.opts, self.model, self.state, self.world
        params = model.phase_parameters(phase)
        groups = [{"params": params}]
        if opts.qat:
            if state.step == 0:
                restart_ranges(model, params)
            # Learned INT8 steps, as logarithms: no weight decay pulling them towards a step of 1.
            groups.append({"params": range_parameters(model, params), "weight_decay": 0.0, "lr": opts.lr * opts.range_lr})
        optimizer, scheduler, scaler = make_optimizer(groups, opts, self.dev, state, self.ckpt_path)
        record = self.history.setdefault(
            str(phase),
            {
                "steps": opts.steps,
                "trainable_params": sum(p.numel() for p in params),
                "total_params": sum(p.numel() for p in model.parameters()),
                "seconds": 0.0,
                "loss": [],
            },
        )
        model.set_phase(phase)
        # Buffers stay per rank (batch-norm statistics follow each rank's micro-batches) and
        # are averaged before each checkpoint and validation (distributed.average_batch_norm).
        net = (
            DistributedDataParallel(model, device_ids=[self.dev.device] if self.dev.cuda else None, **dist.LOCAL_BUFFERS)
            if world.distributed
            else model
        )
        step_net = torch.compile(net) if opts.compile else net
        stream = SampleStream(self.source, phase, opts.batch, opts.patch, opts.seed)
        batches = iter(
            loader(
                stream,
                MicroBatches(state.step, opts.steps, opts.batch, world.rank, world.size, opts.accumulate),
                opts.workers,
                pin_memory=self.dev.cuda,
                prefetch=opts.prefetch,
            )
        )
        t0, step, loss_value, waited = time.perf_counter(), state.step, float("nan"), 0.0
        while step < opts.steps:
            if opts.qat:  # ranges follow the batch maximum for half the phase, then learn
                learn_ranges(model, params if step >= opts.steps // 2 else [])
            total = torch.zeros((), device=self.dev.device)
            for a in range(opts.accumulate):
                tw = time.perf_counter()
                b = self.dev.to(checked(next(batches)))
                waited += time.perf_counter() - tw
                # Gradients are averaged over the processes once per optimiser step.
                sync = net.no_sync() if world.distributed and a < opts.accumulate - 1 else contextlib.nullcontext()
                with sync:
                    loss = step_loss(step_net, model, phase, b, opts, self.dev.autocast) / opts.accumulate
                    scaler.scale(loss).backward()
                total += loss.detach()
            if opts.qat and world.distributed:  # the INT8 steps are not DDP parameters
                dist.mean_([p.grad for p in range_parameters(model, params) if p.grad is not None], world)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            if opts.qat and world.distributed:
                dist.mean_(all_steps(model), world)
            step += 1
            if step % LOG_EVERY == 0 or step == opts.steps:
                dist.mean_([total], world)
                loss_value = float(total)
                record["loss"].append([step, round(loss_value, 5)])
            if self.on_step:
                self.on_step(phase, step, opts.steps, loss_value)
            if opts.val_every and step % opts.val_every == 0 and step < opts.steps:
                self.validate(phase, step, record)
            if step % opts.save_every == 0 or step == opts.steps:
                # Time in the steps and, of it, time the step waited for its micro-batches.
                record["seconds"] += time.perf_counter() - t0
                record["data_wait_s"] = record.get("data_wait_s", 0.0) + waited
                record["samples"] = record.get("samples", 0) + (step - state.step) * opts.batch
                t0, waited = time.perf_counter(), 0.0
                state.step = step
                state.training = {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": self.history,
                }
                self.save(self.ckpt_path)
        if self.val and "val" not in record:
            record["val"] = self.validate(phase, step, record)
            self.save(self.ckpt_path)
        if phase == 1 and state.phase == 1:
            # Phase 2 freezes all of this, so phase-2 variants can start from the same phase 1
            # (`--phase 2 --init RUN/phase1.pt`) and end where `--phase both` would.
            self.save(self.out / "phase1.pt", slim=True)

    def validate(self, phase: int, step: int, record: dict) -> dict | None:
        """Score the held-out set (every rank its share); rank 0 keeps the best model."""
        if not self.val:
            return None
        dist.average_batch_norm(self.model, self.world)
        result = dist.broadcast(self.val.run(self.model, self.world), self.world)
        self.model.set_phase(phase)
        figures = {"step": step, **summary(result)}
        record.setdefault("val_curve", []).append(figures)
        if better(phase, figures, record.get("best")):
            record["best"] = figures
            self.save(self.out / f"best-phase{phase}.pt", slim=True, step=step)
        return result

    def save(self, path: Path, slim: bool = False, step: int | None = None) -> None:
        """Rank 0 writes (atomically) what every rank holds after averaging."""
        dist.average_batch_norm(self.model, self.world)
        self.state.qat_ranges = fake_quant_ranges(self.model)
        if self.world.main:
            save_checkpoint(path, replace(self.state, step=step) if step is not None else self.state, self.model, slim=slim)
        dist.barrier(self.world)
