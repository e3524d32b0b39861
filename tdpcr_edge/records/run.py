"""Schemas of what a scene stream leaves for the next run to trust: run.json (an archive skips
a scene whose run.json is complete) and the resume journal (``--resume`` continues from it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from . import Name, NonNegative, _Record

RUN_SCHEMA = 1
JOURNAL_SCHEMA = 1
Number = Annotated[float, Field(allow_inf_nan=False)]


class TilesRecord(_Record):
    processed: NonNegative


class ScoresRecord(_Record):
    model_config = ConfigDict(extra="allow", strict=False)
    psnr: Number | None = None
    miou: Number | None = None


class SumsSide(_Record):
    """Raw sums an archive pools its scenes' accuracy from (``scene_metrics.pool_accuracy``)."""

    model_config = ConfigDict(extra="allow", strict=False)
    se: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    ae: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    ssim: Number
    sam: Number
    px: NonNegative
    bands: NonNegative

    @model_validator(mode="after")
    def _counted(self):
        if self.px and not self.bands:
            raise ValueError("bands (pixel-bands counted) must be positive where px is")
        return self


class SumsRecord(_Record):
    model: SumsSide
    input: SumsSide
    confusion: Annotated[list[list[NonNegative]], Field(min_length=2, max_length=255)] | None = None

    @model_validator(mode="after")
    def _square(self):
        if self.confusion is not None and any(len(row) != len(self.confusion) for row in self.confusion):
            raise ValueError("confusion must be a square matrix, one row and one column per class")
        return self


class AccuracyRecord(_Record):
    model: ScoresRecord | None = None
    sums: SumsRecord | None = None


class RunRecord(_Record):
    """What an archive reads back from a finished scene's run.json."""

    model_config = ConfigDict(extra="allow", strict=False)
    schema_version: Annotated[int, Field(ge=RUN_SCHEMA, le=RUN_SCHEMA)]
    job_key: Name | None = None
    outputs: Annotated[list[Name], Field(max_length=64)]
    tiles: TilesRecord
    tiles_per_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    wall_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    accuracy: AccuracyRecord | None = None
    warnings: list[str] = []


class StripRecord(_Record):
    band: NonNegative
    y0: NonNegative
    y1: NonNegative


class JournalRecord(_Record):
    schema_version: Annotated[int, Field(ge=JOURNAL_SCHEMA, le=JOURNAL_SCHEMA)] = JOURNAL_SCHEMA
    fingerprint: dict[str, Any]
    band: NonNegative
    flushed: NonNegative
    strips: list[StripRecord]
