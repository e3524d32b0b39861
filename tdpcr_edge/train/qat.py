"""Quantisation-aware training: INT8 rounding simulated where the exported INT8 graph rounds.

``tdpcr-edge export --precision int8`` puts Q/DQ on the inputs and weights of every
convolution (per-tensor symmetric INT8 activations, per-output-channel symmetric INT8
weights, float biases). A model trained in FP32 and quantised afterwards loses most of its
accuracy that way (docs/experiments.md#int8-within-the-drift-budget): its decoder computes
small residuals from differences of large, heavy-tailed activations that INT8 cannot hold.
Trained with the same rounding in the loop, the network learns features that survive it.

Activation ranges: for the first half of each phase a range follows a moving average of
the batch maximum (nothing is clipped while the weights take shape); for the second half
it is learned (LSQ, Esser et al., "Learned Step Size Quantization", ICLR 2020): the INT8
step is a parameter moved by the loss through the straight-through estimator, so each
layer settles its own trade between clipping rare large values and rounding the common
small ones. The batch maximum cannot make that trade: the reconstruction head's last input
is heavy-tailed (its maximum far above its 99th percentile), and a step set by the maximum
rounds the common values coarsely. Learned from the first step instead, tight ranges
starve the layers before them of gradient while they form (the figures of both:
docs/export.md#quantisation-aware-training). Steps are learned as logarithms, so Adam moves
them by relative amounts whatever their size.

A learned range clips, and the network learns to rely on that: the clip is part of the
trained function, at every precision. ``clip_activations`` installs the ranges as clips on
the convolutions' inputs of a plain model (``Checkpoint.build`` does it for a checkpoint
trained with ``--qat``), so torch, the FP32 and FP16 graphs compute what INT8 computes,
less the rounding. ``set_rounding(False)`` gives that FP32 function during training.

Weights are rounded per output channel at their own maximum, before batch-norm folding;
the export folds batch norm into the convolution first, but folding scales each output
channel, and per-output-channel symmetric rounding does not change under that scaling,
so the grid is the same. Rounding is torch's fake-quantise (multiply by 1/scale), where
ONNX divides: the last bit of a near-tie can differ, so graph and simulation agree in
error, not bit for bit (tested).

The steps live outside the model's state_dict (a deployed model is a plain one); the
trainer checkpoints them as ranges (step x 127), which the export hands to the quantiser.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

QMAX = 127


class _ConvFakeQuant:
    """Replaces a convolution's forward: fake-quantised input and weight, float bias."""

    def __init__(self, conv: nn.Conv2d, momentum: float):
        self.conv = conv
        self.momentum = momentum
        self.log_step = nn.Parameter(torch.zeros((), device=conv.weight.device), requires_grad=False)
        self.ready = False  # the range is set from the first batch it sees
        self.learning = False  # False: the range follows the batch maximum while the layer trains
        self.rounding = True  # False: clip at the range only, as FP32 inference of the model does

    def set_range(self, value: float) -> None:
        # float64 arithmetic, so a checkpointed range gives back the same float32 step.
        self.log_step.data.fill_(math.log(max(value, 1e-8) / QMAX))
        self.ready = True

    @property
    def range(self) -> float:
        return QMAX * math.exp(float(self.log_step.detach()))

    @torch.no_grad()
    def _follow(self, x: torch.Tensor) -> None:
        """Move the range towards the batch maximum, on the tensor's device: no host
        synchronisation per layer per step on a GPU. Float64, as ``set_range`` computes."""
        top = x.detach().abs().amax().double()
        value = top if not self.ready else (1 - self.momentum) * (QMAX * self.log_step.double().exp()) + self.momentum * top
        self.log_step.copy_((value.clamp_min(1e-8) / QMAX).log())
        self.ready = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        # One update per training step: the FP32 forward of a step (rounding off) follows no range.
        if not self.ready or (conv.training and not self.learning and self.rounding):
            self._follow(x)
        step = self.log_step.exp().reshape(1)
        if not self.rounding:
            r = step * QMAX
            return conv._conv_forward(torch.minimum(torch.maximum(x, -r), r), conv.weight, conv.bias)
        # Rounding is simulated in FP32 (under autocast the input may arrive in BF16/FP16).
        xq = torch._fake_quantize_learnable_per_tensor_affine(x.float(), step, torch.zeros(1, device=x.device), -QMAX, QMAX, 1.0)
        w = conv.weight
        wscale = (w.detach().abs().flatten(1).amax(1) / QMAX).clamp_min(1e-12).float()
        wq = torch.fake_quantize_per_channel_affine(w, wscale, torch.zeros_like(wscale, dtype=torch.int32), 0, -QMAX, QMAX)
        return conv._conv_forward(xq, wq, conv.bias)


class _InputClip:
    """Forward pre-hook: clip a convolution's input to its learned range."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, module: nn.Module, args: tuple) -> tuple:
        return (args[0].clamp(-self.value, self.value), *args[1:])


def _quantisers(model: nn.Module) -> Iterable[tuple[str, nn.Conv2d, _ConvFakeQuant]]:
    for name, module in model.named_modules():
        fq = module.__dict__.get("forward")
        if isinstance(module, nn.Conv2d) and isinstance(fq, _ConvFakeQuant):
            yield name, module, fq


def enable_fake_quant(model: nn.Module, momentum: float = 0.05) -> int:
    """Simulate INT8 at every convolution of ``model`` (in place); returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and "forward" not in module.__dict__:
            module.forward = _ConvFakeQuant(module, momentum)
            count += 1
    return count


def disable_fake_quant(model: nn.Module) -> None:
    """Back to plain FP32 convolutions (the weights are unchanged by fake quantisation)."""
    for _, module, _ in list(_quantisers(model)):
        del module.forward


def range_parameters(model: nn.Module, params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """The learned steps of the convolutions whose weights are in ``params`` (a training
    phase's parameters), in module order, so an optimizer's state resumes positionally."""
    return [fq.log_step for fq in _selected(model, params)]


def all_steps(model: nn.Module) -> list[nn.Parameter]:
    """Every convolution's INT8 step (a logarithm), in module order: what the processes of a
    distributed run average, so that all of them round alike."""
    return [fq.log_step for _, _, fq in _quantisers(model)]


def _selected(model: nn.Module, params: Iterable[nn.Parameter]) -> Iterable[_ConvFakeQuant]:
    ids = {id(p) for p in params}
    return [fq for _, conv, fq in _quantisers(model) if id(conv.weight) in ids]


def restart_ranges(model: nn.Module, params: Iterable[nn.Parameter]) -> None:
    """Let the convolutions whose weights are in ``params`` take their range afresh from the
    next batch: a phase's layers start from what they see then, not from what an untrained
    layer saw in an earlier phase."""
    for fq in _selected(model, params):
        fq.ready = False


def learn_ranges(model: nn.Module, params: Iterable[nn.Parameter]) -> None:
    """Learn the ranges of the convolutions whose weights are in ``params`` from now on; every
    other range stays where it is (and out of backward)."""
    chosen = {id(fq) for fq in _selected(model, params)}
    for _, _, fq in _quantisers(model):
        fq.learning = id(fq) in chosen
        fq.log_step.requires_grad_(fq.learning)


def set_rounding(model: nn.Module, on: bool) -> None:
    for _, _, fq in _quantisers(model):
        fq.rounding = on


def fake_quant_ranges(model: nn.Module) -> dict[str, float]:
    """Each fake-quantised convolution's activation range (step x 127), by module name
    (checkpointed; empty for a plain model). Convolutions whose forward never ran have
    none: PGF's spatial bias is applied inside ``pgf_fuse``, the fused operator's
    reference, so its input range is left to calibration."""
    return {name: fq.range for name, _, fq in _quantisers(model) if fq.ready}


def load_fake_quant_ranges(model: nn.Module, ranges: dict[str, float]) -> None:
    quantisers = {name: fq for name, _, fq in _quantisers(model)}
    for name, value in ranges.items():
        quantisers[name].set_range(value)


def clip_activations(model: nn.Module, ranges: dict[str, float]) -> int:
    """Clip each named convolution's input to its trained range, in place (the clip is
    part of what a ``--qat`` run trained; see the module docstring). ``model.activation_clips``
    records the ranges (the ONNX export keys its graph cache on them). Returns how many."""
    modules = dict(model.named_modules())
    for name, value in ranges.items():
        modules[name].register_forward_pre_hook(_InputClip(value))
    model.activation_clips = dict(ranges)
    return len(ranges)
