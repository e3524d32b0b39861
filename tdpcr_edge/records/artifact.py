"""Schemas of an artifact's and an engine's records (manifest.json, engine.json) and of a
bench report.json that ``infer --model`` picks a row from. The fields that must agree
(classes, colours, bands) are checked together."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from . import Channel, Count, Name, NonNegative, Sha256, _Record


class ModelConfigRecord(_Record):
    name: Name
    widths: Annotated[list[Count], Field(min_length=1, max_length=16)]
    blocks: Annotated[list[NonNegative], Field(min_length=1, max_length=16)]
    prompts: Count
    optical_bands: Annotated[int, Field(ge=1, le=64)]
    sar_bands: Annotated[int, Field(ge=1, le=8)]
    num_classes: Annotated[int, Field(ge=2, le=255)]
    fusion: Name
    adapter_rank: NonNegative
    arch: Name = "tdpcr"  # absent from records written before the model registry
    heads: NonNegative = 0
    window: NonNegative = 0


class NormalizationRecord(_Record):
    model_config = ConfigDict(extra="allow", strict=False)  # JSON writes 10000.0 and 10000 alike
    optical_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    sar_min_db: list[Annotated[float, Field(allow_inf_nan=False)]]
    sar_max_db: list[Annotated[float, Field(allow_inf_nan=False)]]
    optical_bands: Annotated[list[Name], Field(min_length=1, max_length=64)]
    sar_bands: Annotated[list[Name], Field(min_length=1, max_length=8)]

    @model_validator(mode="after")
    def _sar_ranges(self):
        if not len(self.sar_min_db) == len(self.sar_max_db) == len(self.sar_bands):
            raise ValueError("sar_min_db, sar_max_db and sar_bands must have one entry per SAR band")
        return self


class TensorRecord(_Record):
    name: Name
    shape: Annotated[list[Annotated[int, Field(ge=1)] | Name], Field(min_length=1, max_length=8)]
    dtype: Name


class _ModelRecord(_Record):
    """What manifest.json and engine.json both say of the model, checked together."""

    schema_version: Annotated[int, Field(ge=1)]
    precision: Name
    model: ModelConfigRecord
    normalization: NormalizationRecord
    classes: Annotated[list[Name], Field(min_length=2, max_length=255)]
    colors: list[Annotated[list[Channel], Field(min_length=3, max_length=3)]]
    inputs: list[TensorRecord] | None = None
    outputs: list[TensorRecord] | None = None
    files: dict[Name, Sha256] | None = None
    onnx_sha256: Sha256 | None = None
    drift: dict[str, Any] | None = None
    golden: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _agree(self):
        m, n = self.model, self.normalization
        if len(self.classes) != m.num_classes or len(self.colors) != m.num_classes:
            raise ValueError(f"classes ({len(self.classes)}) and colors ({len(self.colors)}) must be model.num_classes ({m.num_classes})")
        if len(n.optical_bands) != m.optical_bands or len(n.sar_bands) != m.sar_bands:
            raise ValueError("normalization's optical_bands and sar_bands must match model.optical_bands and model.sar_bands")
        return self


class RuntimeRecord(_Record):
    backend: Name


class PluginRecord(_Record):
    enabled: bool
    nodes: NonNegative


class CheckpointRecord(_Record):
    file: Name | None = None
    sha256: Sha256 | None = None


class ManifestRecord(_ModelRecord):
    tile: Annotated[int, Field(ge=8, le=65536)]
    checkpoint: CheckpointRecord | None = None
    runtime: RuntimeRecord | None = None
    plugin: PluginRecord | None = None
    model_bytes: NonNegative | None = None
    format: Name | None = None


class BuildRecord(_Record):
    tile: Annotated[int, Field(ge=8, le=65536)]
    max_batch: Count


class EnginePluginRecord(_Record):
    used: bool
    sha256: Sha256 | None = None


class GpuRecord(_Record):
    name: Name
    sm: Annotated[str, Field(min_length=1, max_length=16)] | int | float


class EngineRecord(_ModelRecord):
    tensorrt: Name
    gpu: GpuRecord
    build: BuildRecord
    plugin: EnginePluginRecord


Number = Annotated[float, Field(allow_inf_nan=False)]
Latency = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ReportRowRecord(_Record):
    """A bench report row as ``infer --model report.json`` reads it to pick the fastest row."""

    model_config = ConfigDict(extra="allow", strict=False)  # JSON numbers: 12 and 12.0 alike
    backend: Name
    precision: Name
    variant: Annotated[str, Field(max_length=256)] = ""
    device: Name = "cpu"
    within_budget: bool | None = None
    latency_ms_p50: Latency | None = None
    latency_ms_p25: Latency | None = None
    latency_ms_p75: Latency | None = None
    latency_ms_rounds: list[Latency] | None = None
    rounds_kept: list[Annotated[int, Field(ge=0)]] | None = None
    psnr_delta: Number | None = None
    miou_delta: Number | None = None
    model_mb: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    model_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None

    @model_validator(mode="after")
    def _kept_rounds_exist(self):
        if self.rounds_kept and any(i >= len(self.latency_ms_rounds or []) for i in self.rounds_kept):
            raise ValueError("rounds_kept names rounds that latency_ms_rounds does not hold")
        return self


class ReportRecord(_Record):
    model_config = ConfigDict(extra="allow", strict=False)
    rows: list[ReportRowRecord]
