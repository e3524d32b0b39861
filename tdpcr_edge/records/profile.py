"""Schemas of a deployment target profile (``export/profiles/*.toml``), one per kind. What
the schema cannot know (ISA feature names, precisions and backends, which live in registries)
is checked by ``backends.targets`` after it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from . import Name, _Written

Tile = Annotated[int, Field(ge=8, le=65536)]
Version = Annotated[str, Field(pattern=r"^\d+(\.\d+){0,3}$")]
Text = Annotated[str, Field(max_length=4096)]


class _Profile(_Written):
    name: Name | None = None
    description: Text
    tile: Tile
    notes: Text = ""
    int8_placement: Name = "tensorrt"


class TensorrtRange(_Written):
    min: Version
    max: Version


class TensorrtProfileRecord(_Profile):
    kind: Literal["tensorrt"] = "tensorrt"
    backend: Name = "ort"
    precision: Name
    tensorrt: TensorrtRange
    cuda: Version
    gpu_sm: Annotated[int, Field(ge=10, le=200)]
    memory_gb: Annotated[float, Field(gt=0, le=1 << 20, strict=False)]
    workspace_mb: Annotated[int, Field(ge=1, le=1 << 24)]
    jetpack: Version | None = None
    max_batch: Annotated[int, Field(ge=1, le=4096)] = 1


class IsaRow(_Written):
    isa: Name | None = None
    precision: Name
    int8_placement: Name | None = None


class CpuProfileRecord(_Profile):
    kind: Literal["cpu"]
    backend: Name
    precision_by_isa: Annotated[list[IsaRow], Field(min_length=1, max_length=32)]
