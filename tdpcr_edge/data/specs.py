"""Real data: SEN12MS-CR, LuojiaSET-OSFCR and generic co-registered GeoTIFF pairs, beside
the synthetic world and folders written by ``tdpcr-edge synth``.

Every command that takes ``--data`` accepts one spec:

    synthetic                              the procedural world (train, export, bench)
    FOLDER                                 scene folders written by `tdpcr-edge synth`
    sen12mscr:ROOT[?split=test&seasons=spring,fall&labels=dfc&sar=uncrtaints]
    luojia:ROOT[?split=test&seed=42&split_file=FILE.json&offset=0]    as published; or ?layout=FILE.toml
    pairs:CSV                              columns optical,sar[,clear|reference][,labels][,cloud][,name]

Readers are lazy: building one indexes file names and checks the layout (a missing file in
a split is an error naming it); pixels are read with rasterio when a sample is asked for.
Normalisation follows the published cloud-removal code (docs/datasets.md).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

import tomllib
from pydantic import ValidationError

from ..errors import ConfigError, DataError
from ..records import describe
from ..records.data import PairsRowRecord
from .dataset import Dataset, Sample, _check_keys, _class_check, _numbered, _split
from .inputs import input_exists, under
from .normalize import Normalization
from .scenes import FILES, find_scenes, read_legend, scene_paths
from .sen12mscr import sen12mscr


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:PATH?key=value&...`` -> (kind, path, options); a bare path is a folder."""
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in ("sen12mscr", "luojia", "pairs"):
        return ("synthetic", "", {}) if spec == "synthetic" else ("folder", str(spec), {})
    path, _, query = rest.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return kind, path, options


def open_dataset(spec: str, split: str = "test") -> Dataset:
    """The data set a ``--data`` spec names (not ``synthetic``, which is generated).
    ``split`` is the default when the spec names none: train for training, test for
    evaluation, val for calibration."""
    kind, path, options = parse_spec(spec)
    if kind == "synthetic":
        raise ConfigError("'synthetic' is generated, not read; use data.sources.SyntheticSource")
    if kind == "folder":
        return scene_folders(path)
    if kind == "sen12mscr":
        _check_keys(spec, options, ("split", "seasons", "labels", "sar", "splits", "incomplete"))
        return sen12mscr(path, _split(spec, options, split), options)
    if kind == "luojia":
        _check_keys(spec, options, ("split", "layout", "seed", "split_file", "offset"))
        return luojia(path, _split(spec, options, split), options.get("layout"), options)
    _check_keys(spec, options, ())
    return pairs(path)


def scene_folders(root: str | Path) -> Dataset:
    folders = find_scenes(root)
    samples = [Sample(f.name, scene_paths(f)) for f in folders]
    for s, f in zip(samples, folders):
        for key in ("optical", "sar"):
            if key not in s.paths:
                raise DataError(f"{f / FILES[key]}: missing; every scene folder needs {FILES['optical']} and {FILES['sar']}")
    legend = read_legend(root)
    classes, colors = legend if legend else _numbered(6)
    # `synth --bands` records its bands in legend.json: the folders' default for a new model.
    bands = _legend_bands(root)
    norm = Normalization(optical_bands=bands) if bands else Normalization()
    return Dataset(f"scene folders in {root}", samples, classes, colors, norm)


def _legend_bands(root) -> tuple[str, ...] | None:
    import json

    path = Path(root) / "legend.json"
    try:
        bands = json.loads(path.read_text()).get("bands") if path.is_file() else None
    except ValueError:
        return None
    return tuple(bands) if bands else None


def read_layout(path: str | Path | None) -> dict:
    from ..records import check
    from ..records.data import LayoutRecord

    fix = "start from tdpcr_edge/data/luojia_layout.toml"
    text = Path(path).read_text() if path else resources.files("tdpcr_edge.data").joinpath("luojia_layout.toml").read_text()
    try:
        layout = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not a data-set layout (TOML: {exc}); {fix}") from None
    return check(layout, LayoutRecord, path, fix, ConfigError)


def luojia(root: str | Path, split: str = "test", layout_path: str | None = None, options: dict | None = None) -> Dataset:
    """LuojiaSET-OSFCR as published (cloud-cover folders, ``data.luojia``), or through a layout
    file: ``?layout=``, or the default ``luojia_layout.toml`` for a root without those folders."""
    from .luojia import is_published, published

    root, options = Path(root), options or {}
    if not root.is_dir():
        raise DataError(f"{root}: LuojiaSET-OSFCR root not found; pass luojia:ROOT")
    if layout_path is None and is_published(root):
        return published(root, split, options)
    drawn = sorted({"seed", "split_file", "offset"} & set(options))
    if drawn:
        raise ConfigError(
            f"luojia:{root}: ?{', ?'.join(drawn)} apply to the published layout (ROOT/0-20%/s2_cloudy/...), "
            "not to one read through a layout file, whose split lists and DN are taken as they are"
        )
    layout = read_layout(layout_path)
    names: list[str] = []
    for s in ("train", "val", "test") if split == "all" else (split,):
        if s not in layout["splits"]:
            raise ConfigError(f"{layout_path or 'default layout'}: no split list for {s!r}")
        lst = root / layout["splits"][s]
        if not lst.is_file():
            raise DataError(f"{lst}: split list missing; LuojiaSET-OSFCR ships train/val/test lists (or edit [splits] in a layout file)")
        names += [line.strip() for line in lst.read_text().splitlines() if line.strip() and not line.startswith("#")]
    samples = []
    for name in names:
        paths = {k: root / pattern.format(name=name) for k, pattern in layout["files"].items()}
        for k, p in paths.items():
            if not p.exists():
                raise DataError(
                    f"{p}: missing ({k} of {name}, listed in {layout['splits'].get(split, split)}); restore it or remove the name from "
                    "the list"
                )
        samples.append(Sample(name, paths))
    if not samples:
        raise DataError(f"{root / layout['splits'].get(split, '')}: the {split} list names no sample")
    legend = read_legend(root / layout["legend"]) if layout.get("legend") else None
    classes, colors = legend if legend else _numbered(int(layout.get("num_classes", 6)))
    bands = tuple(layout.get("optical_bands") or ())
    norm = Normalization()
    if bands:
        norm = replace(norm, optical_bands=tuple(f"band{b}" for b in bands))
    else:
        import rasterio

        with rasterio.open(samples[0].paths["optical"]) as src:
            if src.count != len(norm.optical_bands):
                norm = replace(norm, optical_bands=tuple(src.descriptions[i] or f"band{i + 1}" for i in range(src.count)))
    return Dataset(
        f"LuojiaSET-OSFCR {split} ({len(samples)} samples)",
        samples,
        classes,
        colors,
        norm,
        _class_check(len(classes)),
        {"optical": bands} if bands else {},
    )


# --- generic pairs -------------------------------------------------------------------------


PAIRS_COLUMNS = "optical,sar[,clear|reference][,labels][,cloud][,name]"


def read_pairs(csv_path: str | Path) -> list[dict]:
    """``optical,sar[,clear|reference][,labels][,cloud][,name]`` rows; relative paths are taken
    from the CSV's folder. ``clear`` and ``reference`` are the same column."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: pairs list not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a UTF-8 CSV ({exc}); write it as text with the columns {PAIRS_COLUMNS}") from None
    if not rows or not {"optical", "sar"} <= set(rows[0]):
        raise DataError(f"{csv_path}: needs a header with at least the columns optical,sar")
    out = []
    for i, row in enumerate(rows):
        if None in row or None in row.values():
            raise DataError(f"{csv_path}: row {i + 2} has {'more' if None in row else 'fewer'} fields than the header; one per column")
        try:
            PairsRowRecord.model_validate(row)
        except ValidationError as exc:
            raise DataError(f"{csv_path}: row {i + 2}: {describe(exc)}; columns are {PAIRS_COLUMNS}") from None
        entry = {("reference" if k == "clear" else k): (under(csv_path.parent, v) if v else None) for k, v in row.items() if k != "name"}
        entry["name"] = row.get("name") or f"scene_{i:04d}"
        out.append(entry)
    return out


def pairs(csv_path: str | Path) -> Dataset:
    samples = []
    for row in read_pairs(csv_path):
        paths = {("clear" if k == "reference" else k): v for k, v in row.items() if k != "name" and v is not None}
        for k, p in paths.items():
            if not input_exists(p):
                raise DataError(f"{p}: missing ({k} of row {row['name']} in {csv_path})")
        samples.append(Sample(row["name"], paths))
    legend = read_legend(Path(csv_path).parent)
    classes, colors = legend if legend else _numbered(6)
    return Dataset(f"pairs from {csv_path} ({len(samples)})", samples, classes, colors, labels=_class_check(len(classes)))


def item_unit(spec: str) -> str:
    """What one item of a data spec is called in a report: scenes (synth folders), patches
    (SEN12MS-CR) or samples."""
    return {"folder": "scenes", "sen12mscr": "patches"}.get(parse_spec(str(spec))[0], "samples")
