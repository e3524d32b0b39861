"""Schemas of what describes a data set: a legend.json, a layout TOML (``luojia:ROOT?layout=``)
and a row of a pairs CSV (``pairs:CSV``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from . import Channel, Name, Path, _Record, _Written


class LegendRecord(_Record):
    classes: Annotated[list[Name], Field(min_length=1, max_length=255)]
    colors: list[Annotated[list[Channel], Field(min_length=3, max_length=3)]]

    @model_validator(mode="after")
    def _agree(self):
        if len(self.colors) != len(self.classes):
            raise ValueError(f"colors ({len(self.colors)}) must have one entry per class ({len(self.classes)})")
        return self


Pattern = Annotated[str, Field(min_length=1, max_length=4096, pattern=r"\{name\}")]


class LayoutFiles(_Written):
    """Where each modality of a sample is, ``{name}`` standing for the sample's name."""

    optical: Pattern
    sar: Pattern
    clear: Pattern | None = None
    labels: Pattern | None = None
    cloud: Pattern | None = None


class LayoutSplits(_Written):
    train: Path | None = None
    val: Path | None = None
    test: Path | None = None


class LayoutRecord(_Written):
    files: LayoutFiles
    splits: LayoutSplits
    legend: Path | None = None
    num_classes: Annotated[int, Field(ge=2, le=255)] = 6
    optical_bands: Annotated[list[Annotated[int, Field(ge=1, le=64)]], Field(max_length=64)] = []


class PairsRowRecord(_Written):
    """One row of a pairs CSV as ``csv.DictReader`` reads it (every value a string)."""

    optical: Path
    sar: Path
    clear: str | None = None
    reference: str | None = None
    labels: str | None = None
    cloud: str | None = None
    name: Annotated[str, Field(max_length=256)] | None = None

    @model_validator(mode="after")
    def _one_reference(self):
        if self.clear and self.reference:
            raise ValueError("clear and reference are the same column: give one")
        return self
