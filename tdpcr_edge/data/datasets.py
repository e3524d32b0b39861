"""Real data: SEN12MS-CR, LuojiaSET-OSFCR and generic co-registered GeoTIFF pairs, beside
the synthetic world and folders written by ``tdpcr-edge synth``.

Every command that takes ``--data`` accepts one spec:

    synthetic                              the procedural world (train, export, bench)
    FOLDER                                 scene folders written by `tdpcr-edge synth`
    sen12mscr:ROOT[?split=test&seasons=spring,fall&labels=dfc&sar=uncrtaints]
    luojia:ROOT[?split=test&layout=FILE.toml]
    pairs:CSV                              columns optical,sar[,clear|reference][,labels][,cloud][,name]

Readers are lazy: building one indexes file names and checks the layout (a missing file in
a split is an error naming it); pixels are read with rasterio when a sample is asked for.
Normalisation follows the published cloud-removal code (README, Data sets).
"""

from __future__ import annotations

import csv
import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs

import numpy as np

from ..errors import ConfigError, DataError
from .normalize import Normalization
from .scenes import IGNORE_INDEX, FILES, SceneArrays, find_scenes, read_layers, read_legend

SPLITS = ("train", "val", "test", "all")

# Simplified IGBP of SEN12MS / DFC2020: IGBP codes 1..17 -> 10 classes (index 0 unused).
IGBP_TO_DFC = np.array([255, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 5, 7, 8, 9], np.int64)
DFC_CLASSES = ("forest", "shrubland", "savanna", "grassland", "wetlands", "croplands", "urban", "snow and ice", "barren", "water")
DFC_COLORS = ((0, 153, 0), (198, 176, 68), (251, 255, 19), (182, 255, 5), (39, 255, 135), (194, 79, 68), (165, 165, 165), (105, 255, 248), (249, 255, 164), (28, 13, 255))
# SAR clips of the published code: one range for both polarisations (DSen2-CR, the
# UnCRtainTS "default"), or VV [-25, 0], VH [-32.5, 0] (the UnCRtainTS "resnet" variant).
SAR_CLIPS = {"default": ((-25.0, -25.0), (0.0, 0.0)), "uncrtaints": ((-25.0, -32.5), (0.0, 0.0))}


@dataclass
class Sample:
    """One sample's files; ``read`` turns them into model-space arrays."""

    name: str
    paths: dict[str, Path]


@dataclass
class Dataset:
    """A list of samples with their classes and normalisation; pixels read on demand."""

    description: str
    samples: list[Sample]
    classes: list[str]
    colors: list[tuple[int, int, int]]
    norm: Normalization = field(default_factory=Normalization)
    labels: Callable[[np.ndarray, Path], np.ndarray] | None = None
    bands: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # "ids": label rasters hold class ids (255 = ignore); "igbp": SEN12MS codes that
    # ``labels`` maps, so a consumer reading the raster itself cannot use them.
    label_codes: str = "ids"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> SceneArrays:
        return self.read(i)

    def read(self, i: int, norm: Normalization | None = None) -> SceneArrays:
        """Sample ``i`` in model space; ``norm`` (a checkpoint's) overrides the data set's,
        so a model is fed exactly what it was trained on."""
        s = self.samples[i]
        return read_layers(s.name, s.paths, norm or self.norm, self.labels, self.bands)

    def scenes(self, norm: Normalization | None = None):
        return (self.read(i, norm) for i in range(len(self)))


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``kind:PATH?key=value&...`` -> (kind, path, options); a bare path is a folder."""
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in ("sen12mscr", "luojia", "pairs"):
        return ("synthetic", "", {}) if spec == "synthetic" else ("folder", str(spec), {})
    path, _, query = rest.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return kind, path, options


def _check_keys(spec: str, options: dict, allowed: tuple[str, ...]) -> None:
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ConfigError(f"{spec}: unknown option {', '.join(bad)}; this data set takes {', '.join(allowed)}")


def _split(spec: str, options: dict, default: str) -> str:
    split = options.get("split", default)
    if split not in SPLITS:
        raise ConfigError(f"{spec}: unknown split {split!r}; choose {', '.join(SPLITS)}")
    return split


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
        _check_keys(spec, options, ("split", "layout"))
        return luojia(path, _split(spec, options, split), options.get("layout"))
    _check_keys(spec, options, ())
    return pairs(path)


def scene_folders(root: str | Path) -> Dataset:
    folders = find_scenes(root)
    samples = [Sample(f.name, {k: f / name for k, name in FILES.items() if (f / name).exists()}) for f in folders]
    for s, f in zip(samples, folders):
        for key in ("optical", "sar"):
            if key not in s.paths:
                raise DataError(f"{f / FILES[key]}: missing; every scene folder needs {FILES['optical']} and {FILES['sar']}")
    legend = read_legend(root)
    classes, colors = legend if legend else _numbered(6)
    return Dataset(f"scene folders in {root}", samples, classes, colors)


def _numbered(n: int) -> tuple[list[str], list[tuple[int, int, int]]]:
    rng = np.random.default_rng(0)
    return [f"class {i}" for i in range(n)], [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(n)]


# --- SEN12MS-CR -------------------------------------------------------------------------

SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
_PATCH = re.compile(r"^(?P<season>ROIs\d+_[a-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")


def sen12mscr_splits(path: str | Path | None = None) -> dict[str, set[str]]:
    text = Path(path).read_text() if path else resources.files("tdpcr_edge.data").joinpath("splits/sen12mscr.toml").read_text()
    try:
        d = tomllib.loads(text)
        return {"val": set(d["val"]), "test": set(d["test"])}
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a split file ({exc}); it needs lists val = [...] and test = [...] of '<season>/<scene>' keys") from None


def _igbp_to_dfc(raw: np.ndarray, path: Path) -> np.ndarray:
    bad = (raw < 1) | (raw > 17)
    if bad.any():
        raise DataError(f"{path}: IGBP land-cover codes must be 1..17, found {int(raw[bad].flat[0])}; the file is not a SEN12MS lc patch")
    return IGBP_TO_DFC[raw.astype(np.int64)]


def sen12mscr(root: str | Path, split: str = "test", options: dict | None = None) -> Dataset:
    """SEN12MS-CR: ``ROOT/<season>_s1/s1_<scene>/<season>_s1_<scene>_p<patch>.tif`` with its
    ``_s2`` (clear target) and ``_s2_cloudy`` (input) twins; with ``labels=dfc``, SEN12MS's
    ``_lc`` patches (IGBP band, mapped to the 10 simplified classes) as labels."""
    options = options or {}
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: SEN12MS-CR root not found; pass sen12mscr:ROOT, the folder holding ROIs1158_spring_s1 etc.")
    want_seasons = [s for s in SEASONS if any(w in s for w in options.get("seasons", "").split(","))] if options.get("seasons") else list(SEASONS)
    with_labels = options.get("labels", "none")
    if with_labels not in ("none", "dfc"):
        raise ConfigError(f"sen12mscr labels={with_labels!r}: choose none or dfc (SEN12MS land cover, simplified IGBP)")
    sar = options.get("sar", "default")
    if sar not in SAR_CLIPS:
        raise ConfigError(f"sen12mscr sar={sar!r}: choose {', '.join(SAR_CLIPS)}")
    incomplete = options.get("incomplete", "error")
    if incomplete not in ("error", "skip"):
        raise ConfigError(f"sen12mscr incomplete={incomplete!r}: choose error (the default) or skip (leave out, and count, patches missing a file)")
    splits = sen12mscr_splits(options.get("splits"))
    held_out = splits["val"] | splits["test"]
    modalities = {"sar": "s1", "clear": "s2", "optical": "s2_cloudy"} | ({"labels": "lc"} if with_labels == "dfc" else {})
    present = [s for s in want_seasons if any((root / f"{s}_{m}").is_dir() for m in modalities.values())]
    if not present:
        raise DataError(f"{root}: no {want_seasons[0]}_s1 (or other season) folder; expected ROOT/<season>_s1/s1_<scene>/<season>_s1_<scene>_p<patch>.tif")

    def wanted(season: str, scene: str) -> bool:
        key = f"{season}/{scene}"
        return key in splits[split] if split in ("val", "test") else not (split == "train" and key in held_out)

    def path(season: str, mod: str, scene: str, patch: str) -> Path:
        return root / f"{season}_{mod}" / f"{mod}_{scene}" / f"{season}_{mod}_{scene}_p{patch}.tif"

    samples, skipped = [], []
    for season in present:
        # A patch is indexed from every modality's folder, so a partial download (any one file
        # missing) is found, whichever file it lacks.
        keys: set[tuple[str, str]] = set()
        for mod in modalities.values():
            pattern = re.compile(rf"^{season}_{mod}_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")
            for f in (root / f"{season}_{mod}").glob(f"{mod}_*/*.tif"):
                if (m := pattern.match(f.name)) and f.parent.name == f"{mod}_{m['scene']}" and wanted(season, m["scene"]):
                    keys.add((m["scene"], m["patch"]))
        for scene, patch in sorted(keys, key=lambda k: (int(k[0]), int(k[1]))):
            paths = {k: path(season, mod, scene, patch) for k, mod in modalities.items()}
            missing = [(k, p) for k, p in paths.items() if not p.exists()]
            if missing and incomplete == "skip":
                skipped.append(f"{season}_{scene}_p{patch}")
                continue
            if missing:
                k, p = missing[0]
                raise DataError(f"{p}: missing ({k} of patch {season}_{scene}_p{patch}, split {split}); restore it from the data set archive, "
                                f"or add ?incomplete=skip to leave such patches out")
            samples.append(Sample(f"{season}_{scene}_p{patch}", paths))
    if not samples:
        raise DataError(f"{root}: no SEN12MS-CR patches of split {split} found; check the root and the seasons present")
    lo, hi = SAR_CLIPS[sar]
    norm = Normalization(sar_min_db=lo, sar_max_db=hi)
    classes, colors = (list(DFC_CLASSES), list(DFC_COLORS)) if with_labels == "dfc" else _numbered(len(DFC_CLASSES))
    left_out = f", {len(skipped)} incomplete left out" if skipped else ""
    return Dataset(f"SEN12MS-CR {split} ({len(samples)} patches{left_out})", samples, classes, colors, norm, _igbp_to_dfc if with_labels == "dfc" else None, {"labels": (1,)} if with_labels == "dfc" else {}, "igbp" if with_labels == "dfc" else "ids")


# --- LuojiaSET-OSFCR ----------------------------------------------------------------------

def read_layout(path: str | Path | None) -> dict:
    text = Path(path).read_text() if path else resources.files("tdpcr_edge.data").joinpath("luojia_layout.toml").read_text()
    try:
        layout = tomllib.loads(text)
        files = layout["files"]
        assert {"optical", "sar"} <= set(files) and set(files) <= {"optical", "sar", "clear", "labels", "cloud"}
        layout["splits"]
    except (tomllib.TOMLDecodeError, KeyError, TypeError, AssertionError) as exc:
        raise ConfigError(f"{path}: not a data-set layout ({type(exc).__name__} {exc}); start from tdpcr_edge/data/luojia_layout.toml") from None
    return layout


def _class_check(num_classes: int) -> Callable[[np.ndarray, Path], np.ndarray]:
    def check(raw: np.ndarray, path: Path) -> np.ndarray:
        bad = (raw >= num_classes) & (raw != IGNORE_INDEX) | (raw < 0)
        if bad.any():
            raise DataError(f"{path}: label value {int(raw[bad].flat[0])} is outside the {num_classes} classes (0..{num_classes - 1}, 255 = ignore); fix the labels or num_classes in the layout")
        return raw

    return check


def luojia(root: str | Path, split: str = "test", layout_path: str | None = None) -> Dataset:
    """LuojiaSET-OSFCR through a layout file (default: ``luojia_layout.toml``)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: LuojiaSET-OSFCR root not found; pass luojia:ROOT")
    layout = read_layout(layout_path)
    names: list[str] = []
    for s in (("train", "val", "test") if split == "all" else (split,)):
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
                raise DataError(f"{p}: missing ({k} of {name}, listed in {layout['splits'].get(split, split)}); restore it or remove the name from the list")
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
    return Dataset(f"LuojiaSET-OSFCR {split} ({len(samples)} samples)", samples, classes, colors, norm, _class_check(len(classes)), {"optical": bands} if bands else {})


# --- generic pairs -------------------------------------------------------------------------

def read_pairs(csv_path: str | Path) -> list[dict]:
    """``optical,sar[,clear|reference][,labels][,cloud][,name]`` rows; relative paths are taken
    from the CSV's folder. ``clear`` and ``reference`` are the same column."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: pairs list not found")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"optical", "sar"} <= set(rows[0]):
        raise DataError(f"{csv_path}: needs a header with at least the columns optical,sar")
    out = []
    for i, row in enumerate(rows):
        entry = {("reference" if k == "clear" else k): (csv_path.parent / v if v and not Path(v).is_absolute() else (Path(v) if v else None)) for k, v in row.items() if k != "name"}
        for key in ("optical", "sar"):
            if entry.get(key) is None:
                raise DataError(f"{csv_path}: row {i + 2} has no {key} path")
        entry["name"] = row.get("name") or f"scene_{i:04d}"
        out.append(entry)
    return out


def pairs(csv_path: str | Path) -> Dataset:
    samples = []
    for row in read_pairs(csv_path):
        paths = {("clear" if k == "reference" else k): v for k, v in row.items() if k != "name" and v is not None}
        for k, p in paths.items():
            if not p.exists():
                raise DataError(f"{p}: missing ({k} of row {row['name']} in {csv_path})")
        samples.append(Sample(row["name"], paths))
    legend = read_legend(Path(csv_path).parent)
    classes, colors = legend if legend else _numbered(6)
    return Dataset(f"pairs from {csv_path} ({len(samples)})", samples, classes, colors, labels=_class_check(len(classes)))
