"""SEN12MS-CR (Ebel et al.): ``ROOT/ROIs*_<season>_{s1,s2,s2_cloudy}/...`` patches of 256 x 256
pixels, the official scene splits, and optionally the SEN12MS land cover as labels."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import tomllib

from ..errors import ConfigError, DataError
from .dataset import Dataset, Sample, _numbered
from .normalize import Normalization

# Simplified IGBP of SEN12MS / DFC2020: IGBP codes 1..17 -> 10 classes (index 0 unused).
IGBP_TO_DFC = np.array([255, 0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 5, 6, 5, 7, 8, 9], np.int64)
DFC_CLASSES = ("forest", "shrubland", "savanna", "grassland", "wetlands", "croplands", "urban", "snow and ice", "barren", "water")
DFC_COLORS = (
    (0, 153, 0),
    (198, 176, 68),
    (251, 255, 19),
    (182, 255, 5),
    (39, 255, 135),
    (194, 79, 68),
    (165, 165, 165),
    (105, 255, 248),
    (249, 255, 164),
    (28, 13, 255),
)
# SAR clips of the published code: one range for both polarisations (DSen2-CR, the
# UnCRtainTS "default"), or VV [-25, 0], VH [-32.5, 0] (the UnCRtainTS "resnet" variant).
SAR_CLIPS = {"default": ((-25.0, -25.0), (0.0, 0.0)), "uncrtaints": ((-25.0, -32.5), (0.0, 0.0))}


SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
_PATCH = re.compile(r"^(?P<season>ROIs\d+_[a-z]+)_s1_(?P<scene>\d+)_p(?P<patch>\d+)\.tif$")


def sen12mscr_splits(path: str | Path | None = None) -> dict[str, set[str]]:
    text = Path(path).read_text() if path else resources.files("tdpcr_edge.data").joinpath("splits/sen12mscr.toml").read_text()
    try:
        d = tomllib.loads(text)
        return {"val": set(d["val"]), "test": set(d["test"])}
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a split file ({exc}); it needs lists val = [...] and test = [...] of '<season>/<scene>' keys"
        ) from None


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
    want_seasons = (
        [s for s in SEASONS if any(w in s for w in options.get("seasons", "").split(","))] if options.get("seasons") else list(SEASONS)
    )
    with_labels = options.get("labels", "none")
    if with_labels not in ("none", "dfc"):
        raise ConfigError(f"sen12mscr labels={with_labels!r}: choose none or dfc (SEN12MS land cover, simplified IGBP)")
    sar = options.get("sar", "default")
    if sar not in SAR_CLIPS:
        raise ConfigError(f"sen12mscr sar={sar!r}: choose {', '.join(SAR_CLIPS)}")
    incomplete = options.get("incomplete", "error")
    if incomplete not in ("error", "skip"):
        raise ConfigError(
            f"sen12mscr incomplete={incomplete!r}: choose error (the default) or skip (leave out, and count, patches missing a file)"
        )
    splits = sen12mscr_splits(options.get("splits"))
    held_out = splits["val"] | splits["test"]
    modalities = {"sar": "s1", "clear": "s2", "optical": "s2_cloudy"} | ({"labels": "lc"} if with_labels == "dfc" else {})
    present = [s for s in want_seasons if any((root / f"{s}_{m}").is_dir() for m in modalities.values())]
    if not present:
        raise DataError(
            f"{root}: no {want_seasons[0]}_s1 (or other season) folder; expected "
            "ROOT/<season>_s1/s1_<scene>/<season>_s1_<scene>_p<patch>.tif"
        )

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
                raise DataError(
                    f"{p}: missing ({k} of patch {season}_{scene}_p{patch}, split {split}); restore it from the data set archive, "
                    f"or add ?incomplete=skip to leave such patches out"
                )
            samples.append(Sample(f"{season}_{scene}_p{patch}", paths))
    if not samples:
        raise DataError(f"{root}: no SEN12MS-CR patches of split {split} found; check the root and the seasons present")
    lo, hi = SAR_CLIPS[sar]
    norm = Normalization(sar_min_db=lo, sar_max_db=hi)
    classes, colors = (list(DFC_CLASSES), list(DFC_COLORS)) if with_labels == "dfc" else _numbered(len(DFC_CLASSES))
    left_out = f", {len(skipped)} incomplete left out" if skipped else ""
    return Dataset(
        f"SEN12MS-CR {split} ({len(samples)} patches{left_out})",
        samples,
        classes,
        colors,
        norm,
        _igbp_to_dfc if with_labels == "dfc" else None,
        {"labels": (1,)} if with_labels == "dfc" else {},
        "igbp" if with_labels == "dfc" else "ids",
    )


# --- LuojiaSET-OSFCR ----------------------------------------------------------------------
