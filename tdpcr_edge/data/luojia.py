"""LuojiaSET-OSFCR as it is published: five folders by cloud cover, each holding
``s1/``, ``s2/`` (cloud-free target), ``s2_cloudy/`` (input), ``cloud_detection_results/``
(cloud mask) and ``land_cover_maps/``, a sample's files sharing folder, region and patch
(``ROIs_<RR>_<modality>_p<N>.tif``). No split lists ship: the split is drawn here, per
cloud-cover folder, from a seed (or read from the user's own file). The +1000 DN offset of
Sentinel-2 processing baseline 04.00 is measured on the data and removed before the usual
normalisation (docs/datasets.md#data-sets)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from ..errors import ConfigError, DataError
from .dataset import Dataset, Sample, _class_check, _numbered
from .normalize import Normalization
from .scenes import read_legend

FOLDERS = ("0-20%", "20%-40%", "40%-60%", "60%-80%", "80%-100%")
# Sample key -> (folder, the modality's tag in the file name); the cloud mask is named after
# the cloudy image it was detected on, the land cover after the clear one.
MODALITIES = {
    "optical": ("s2_cloudy", "s2_cloudy"),
    "sar": ("s1", "s1"),
    "clear": ("s2", "s2"),
    "cloud": ("cloud_detection_results", "s2_cloudy"),
    "labels": ("land_cover_maps", "s2"),
}
NUM_CLASSES = 7
SEED = 42
FRACTIONS = {"train": 0.70, "val": 0.15, "test": 0.15}
BASELINE_OFFSET = 1000
_KEY = re.compile(r"^ROIs_(?P<region>\d+)_(?:(?:s1|s2|s2_cloudy)_)?p(?P<patch>\d+)(?:\.tif)?$")
# Cloud-free cirrus (B10) is tens of DN; with the offset nothing valid is below ~1000, so the
# threshold sits just under it to allow the band's noise.
_CIRRUS_MIN = 900


def is_published(root: Path) -> bool:
    """Whether ``root`` holds the cloud-cover folders (or any folder with ``s2_cloudy/``)."""
    return bool(_groups(root))


def _groups(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (d.name in FOLDERS or (d / "s2_cloudy").is_dir()))


def _order(key: str) -> tuple[int, int]:
    m = _KEY.match(key)
    return int(m["region"]), int(m["patch"])


def _index(root: Path, group: str) -> dict[str, dict[str, Path]]:
    """Every sample of a folder: key -> the paths of its files, those that are missing
    included (as the name they should have), so a partial download is named whichever file
    it lacks. A modality whose folder is absent is left out (SAR and cloudy are needed)."""
    found: dict[str, dict[str, Path]] = {}
    present = {}
    for k, (folder, tag) in MODALITIES.items():
        d = root / group / folder
        if not d.is_dir() and k not in ("optical", "sar"):
            continue
        present[k] = (d, tag)
        pattern = re.compile(rf"^ROIs_(?P<region>\d+)_{tag}_p(?P<patch>\d+)\.tif$", re.IGNORECASE)
        for f in d.iterdir() if d.is_dir() else ():
            if m := pattern.match(f.name):
                found.setdefault(f"ROIs_{m['region']}_p{m['patch']}", {})[k] = f
    for key, paths in found.items():
        region, patch = _KEY.match(key).group("region", "patch")
        for k, (d, tag) in present.items():
            paths.setdefault(k, d / f"ROIs_{region}_{tag}_p{patch}.tif")
    return dict(sorted(found.items(), key=lambda kv: _order(kv[0])))


def _draw(keys: list[str], seed: int) -> dict[str, list[str]]:
    """One folder's keys split by ``FRACTIONS``: sorted, shuffled by the seed, cut."""
    keys = sorted(keys, key=_order)
    keys = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    # Whole percent, rounded half up in integers: no float edge moves a sample across a cut.
    n, train, val = len(keys), round(100 * FRACTIONS["train"]), round(100 * FRACTIONS["val"])
    a, b = (n * train + 50) // 100, (n * (train + val) + 50) // 100
    return {"train": keys[:a], "val": keys[a:b], "test": keys[b:]}


def _split_file(path: Path, root: Path, index: dict[str, dict]) -> dict[str, dict[str, list[str]]]:
    """A user's split: JSON ``{"train": [...], "val": [...], "test": [...]}`` of
    ``<folder>/ROIs_<RR>_p<N>`` (a file name of any modality stands for its sample)."""
    fix = 'expected JSON {"train": ["0-20%/ROIs_01_p12", ...], "val": [...], "test": [...]}'
    path = path if path.is_file() or path.is_absolute() else root / path
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a split file ({exc}); {fix}") from None
    if not isinstance(d, dict) or not set(d) <= set(FRACTIONS) or not all(isinstance(v, list) for v in d.values()):
        raise ConfigError(f"{path}: not a split file (keys {', '.join(map(str, d)) if isinstance(d, dict) else 'none'}); {fix}")
    out: dict[str, dict[str, list[str]]] = {g: {s: [] for s in FRACTIONS} for g in index}
    seen: dict[tuple[str, str], str] = {}
    for split, entries in d.items():
        for entry in entries:
            group, _, name = str(entry).rpartition("/")
            m = _KEY.match(name)
            key = f"ROIs_{m['region']}_p{m['patch']}" if m else None
            if group not in index or key not in index[group]:
                raise DataError(f"{path}: {entry!r} (in {split}) is no sample under {root}; entries are <folder>/ROIs_<RR>_p<N>")
            if (group, key) in seen:
                raise DataError(f"{path}: {entry!r} is listed in {seen[group, key]} and {split}; name each sample once")
            seen[group, key] = split
            out[group][split].append(key)
    return out


def measure_offset(root: Path, samples: list[Sample]) -> tuple[int, str]:
    """The baseline 04.00 offset in the optical DN, from a few samples: present when the
    darkest valid pixel of B2..B4 is never below 1000 (clear and cloudy) and the clear image's
    median cirrus band (B10) is near 1000 or above."""
    verdicts = {}
    for s in samples:
        floors, cirrus = [], None
        for k in ("clear", "optical"):
            if k not in s.paths or not s.paths[k].exists():
                continue
            try:
                with rasterio.open(s.paths[k]) as src:
                    if src.count < 11:
                        raise DataError(f"{s.paths[k]}: {src.count} bands; LuojiaSET-OSFCR images have 13 (B1..B12 with B8A)")
                    dn = src.read([2, 3, 4, 11])
            except RasterioError as exc:
                raise DataError(f"{s.paths[k]}: cannot read as a GeoTIFF ({exc}); re-create or re-download the file") from exc
            visible = dn[:3][dn[:3] > 0]  # 0 is no data in Sentinel-2 products
            if visible.size:
                floors.append(int(visible.min()))
            b10 = dn[3][dn[3] > 0]
            if b10.size and cirrus is None:
                cirrus = float(np.median(b10))
        if floors and cirrus is not None:
            verdicts[s.name] = min(floors) >= BASELINE_OFFSET and cirrus >= _CIRRUS_MIN
    if not verdicts:
        return 0, "not measurable (no readable optical image); DN as stored"
    if len(set(verdicts.values())) > 1:
        yes = next(k for k, v in verdicts.items() if v)
        no = next(k for k, v in verdicts.items() if not v)
        raise DataError(
            f"{root}: {yes} shows the +{BASELINE_OFFSET} DN offset of processing baseline 04.00 and {no} does not; "
            f"pass ?offset={BASELINE_OFFSET} or ?offset=0 to choose one for every sample"
        )
    offset = BASELINE_OFFSET if next(iter(verdicts.values())) else 0
    return offset, f"measured on {len(verdicts)} samples ({', '.join(verdicts)})"


def published(root: Path, split: str, options: dict) -> Dataset:
    """LuojiaSET-OSFCR from its published layout; ``options``: ``seed``, ``split_file``, ``offset``."""
    index = {g: _index(root, g) for g in _groups(root)}
    for g, samples in index.items():
        if not samples:
            raise DataError(f"{root / g}: no ROIs_<RR>_s2_cloudy_p<N>.tif samples in this folder; restore it or remove the folder")
    try:
        seed = int(options.get("seed", SEED))
    except ValueError:
        raise ConfigError(f"luojia seed={options['seed']!r}: pass an integer") from None
    if options.get("split_file"):
        drawn = _split_file(Path(options["split_file"]), root, index)
        rule = {"file": str(options["split_file"])}
        how = f"split from {options['split_file']}"
    else:
        drawn = {g: _draw(list(keys), seed) for g, keys in index.items()}
        rule = {"by": "cloud-cover folder", "seed": seed, "fractions": FRACTIONS}
        how = f"split {'/'.join(f'{round(100 * f)}' for f in FRACTIONS.values())} per cloud-cover folder, seed {seed}"
    wanted = tuple(FRACTIONS) if split == "all" else (split,)
    samples = []
    for g, keys in index.items():
        chosen = {k for s in wanted for k in drawn[g][s]}
        for key, paths in keys.items():
            if key not in chosen:
                continue
            for k, p in paths.items():
                if not p.exists():
                    raise DataError(
                        f"{p}: missing ({k} of {g}/{key}, split {split}); restore it from the LuojiaSET-OSFCR archive, "
                        "or remove the sample's other files"
                    )
            samples.append(Sample(f"{g}_{key}", paths, g))
    if not samples:
        raise DataError(f"{root}: no LuojiaSET-OSFCR samples in the {split} split ({how}); check the root or the split file")

    if "offset" in options:
        offset = int(options["offset"]) if re.fullmatch(r"\d{1,5}", options["offset"]) else -1
        if not 0 <= offset <= 10000:
            raise ConfigError(f"luojia offset={options['offset']!r}: pass the DN to take off, 0 or {BASELINE_OFFSET}")
        source = "?offset="
    else:
        # The first sample of each folder, whatever the split: train and test get one offset.
        firsts = [Sample(f"{g}_{key}", paths, g) for g, keys in index.items() for key, paths in list(keys.items())[:1]]
        offset, source = measure_offset(root, firsts)
    legend = read_legend(root)
    classes, colors = legend if legend else _numbered(NUM_CLASSES)
    per_group = {g: sum(s.group == g for s in samples) for g in index}
    meta = {
        "layout": "LuojiaSET-OSFCR as published",
        "split": {"name": split, **rule, "samples": per_group},
        "optical_offset": {"dn": offset, "from": source},
    }
    return Dataset(
        f"LuojiaSET-OSFCR {split} ({len(samples)} samples in {len(index)} cloud-cover folders; {how}; "
        f"optical offset {offset} DN{' taken off' * bool(offset)} ({'from ?offset=' if source == '?offset=' else source.split(' (')[0]}))",
        samples,
        classes,
        colors,
        Normalization(),
        _class_check(len(classes)),
        meta=meta,
        optical_offset=offset,
    )
