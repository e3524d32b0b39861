"""Where and in which precision a training step runs: the device (``--device``), mixed
precision (``--amp``: autocast, with a gradient scaler for FP16) and the memory format."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .options import AMP


@dataclass
class StepDevice:
    device: torch.device
    amp: str  # off, bf16 or fp16
    channels_last: bool

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def scaler(self) -> torch.amp.GradScaler:
        # FP16 gradients underflow without loss scaling; BF16 has FP32's range and needs none.
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def to(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batch.items():
            v = v.to(self.device, non_blocking=True)
            if self.channels_last and v.dim() == 4:
                v = v.contiguous(memory_format=torch.channels_last)
            out[k] = v
        return out


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``. Under torchrun, ``cuda``
    and ``auto`` mean this process's GPU (LOCAL_RANK)."""
    spec = spec.strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise ConfigError(f"unknown --device {spec!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"--device {spec}: this torch ({torch.__version__}) sees no CUDA device; use --device cpu, or install a CUDA build of torch "
            "on a GPU machine"
        )
    if spec == "cuda":
        index = local_rank or 0
    else:
        try:
            index = int(spec.partition(":")[2])
        except ValueError:
            raise ConfigError(f"unknown --device {spec!r}: choose auto, cpu, cuda or cuda:N") from None
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here; pick one of "
            f"cuda:0..cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", index)


def cpu_has_bf16() -> bool:
    from ..probe import cpu_isa

    return cpu_isa().native_bf16


def resolve_amp(amp: str, device: torch.device) -> str:
    amp = amp.strip().lower()
    if amp not in AMP:
        raise ConfigError(f"unknown --amp {amp!r}: choose {', '.join(AMP)}")
    if amp == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"--amp bf16: {torch.cuda.get_device_name(device)} has no BF16 arithmetic (it needs compute capability 8.0 or newer); use "
                "--amp fp16"
            )
        if device.type == "cpu" and not cpu_has_bf16():
            raise ConfigError(
                "--amp bf16: this CPU has neither AVX512-BF16 nor AMX, so BF16 would be emulated and slower than FP32; use --amp off"
            )
    if amp == "fp16" and device.type == "cpu":
        raise ConfigError(
            "--amp fp16 trains on CUDA only (CPUs have no fast FP16 arithmetic); use --amp bf16 on a CPU with AVX512-BF16 or AMX, or "
            "--amp off"
        )
    return amp


def step_device(device: str, amp: str, local_rank: int | None = None) -> StepDevice:
    dev = resolve_device(device, local_rank)
    amp = resolve_amp(amp, dev)
    # Tensor cores read NHWC; on a CPU oneDNN picks its own layout and NHWC gains nothing.
    return StepDevice(dev, amp, channels_last=dev.type == "cuda")
