"""Schemas of the records a runtime reads, checked when the record is read: a record that
says something the code cannot use is one line naming the file, the key path and what was
expected, before anything uses it. One module per family: ``artifact`` (manifest.json,
engine.json, report.json), ``data`` (legend.json, the layout TOML, the pairs CSV), ``run``
(run.json, the resume journal), ``profile`` (target profiles).

pydantic, because the runtime install already has it (typer validates options through it), it
reports the key path of each error, and its models read as the contract's documentation. The
models leave unknown keys alone where a newer writer may add some (our JSON records); files a
person writes (layouts, profiles, pair lists) refuse unknown keys, which are typos."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import CheckpointError, TdpcrError

Count = Annotated[int, Field(ge=1, le=1_000_000)]
NonNegative = Annotated[int, Field(ge=0, le=1 << 40)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Channel = Annotated[int, Field(ge=0, le=255)]
Path = Annotated[str, Field(min_length=1, max_length=4096)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Written(BaseModel):
    """A file a person writes: an unknown key is a typo, refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


def check(record: Any, schema: type[BaseModel], path, fix: str, error: type[TdpcrError] = CheckpointError) -> dict:
    """``record`` as read from ``path``, or an ``error`` naming the first key that is wrong."""
    if not isinstance(record, dict):
        raise error(f"{path}: holds a {type(record).__name__}, not an object (a table of keys); {fix}")
    try:
        schema.model_validate(record)
    except ValidationError as exc:
        raise error(f"{path}: {describe(exc)}; {fix}") from None
    return record


def describe(exc: ValidationError) -> str:
    """The first error of a validation: its key path, what was expected and what it holds."""
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "(the record)"
    if e["type"] == "extra_forbidden":
        return f"unknown key {where!r}"
    if e["type"] == "missing":
        return f"missing key {where!r}"
    given = e.get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) or len(repr(given)) <= 60 else type(given).__name__
    return f"{where}: {e['msg'].removeprefix('Value error, ')} (it holds {shown[:80]})"
