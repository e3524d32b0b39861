"""Fixture generators that mirror the real data sets' layouts exactly (names, dtypes, band
counts, CRS, 10 m pixels) at a small patch size, with pixel values from the synthetic world
so a model sees plausible scenes. Kept beside the tests as torchgeo keeps its data.py
scripts; run as a script to look at a copy:

    python -m tests.data.fixtures OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from tdpcr_edge.data.synthetic import make_scene

# Synthetic classes -> an IGBP code of the same kind (water, forest, cropland, urban, barren, grassland).
CLASS_TO_IGBP = np.array([17, 1, 12, 13, 16, 10], np.uint16)


def _write(path: Path, data: np.ndarray, crs: str, origin=(500000.0, 5000000.0), nodata=None, descriptions=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, h, w = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=h,
        width=w,
        count=count,
        dtype=data.dtype.name,
        crs=crs,
        transform=from_origin(origin[0], origin[1], 10.0, 10.0),
        nodata=nodata,
    ) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    return path


def sen12mscr(root: Path, size: int = 32, with_lc: bool = True, layout: dict | None = None) -> dict[str, list[str]]:
    """SEN12MS-CR (+ SEN12MS lc): per season ``<season>_s1|_s2|_s2_cloudy|_lc`` folders,
    ``s1_<scene>`` sub-folders, ``<season>_s1_<scene>_p<patch>.tif``. Scenes by default: spring
    106 (official test, 2 patches), winter 22 (official val, 1 patch), fall 3 (train, 2 patches);
    ``layout`` ({season: {scene: [patches]}}) names others."""
    layout = layout or {"ROIs1158_spring": {"106": [30, 407]}, "ROIs2017_winter": {"22": [5]}, "ROIs1970_fall": {"3": [1, 2]}}
    names: dict[str, list[str]] = {}
    i = 0
    for season, scenes in layout.items():
        for scene, patches in scenes.items():
            for patch in patches:
                s = make_scene(1234, i, size)
                i += 1
                crs = "EPSG:32633"
                stem = f"{scene}_p{patch}"
                _write(root / f"{season}_s1" / f"s1_{scene}" / f"{season}_s1_{stem}.tif", s.sar.astype(np.float32), crs)
                _write(root / f"{season}_s2" / f"s2_{scene}" / f"{season}_s2_{stem}.tif", s.optical_clear.astype(np.uint16), crs)
                _write(
                    root / f"{season}_s2_cloudy" / f"s2_cloudy_{scene}" / f"{season}_s2_cloudy_{stem}.tif",
                    s.optical_cloudy.astype(np.uint16),
                    crs,
                )
                if with_lc:
                    igbp = CLASS_TO_IGBP[s.labels]
                    lc = np.stack([igbp, igbp, igbp, igbp]).astype(np.uint16)  # IGBP, LCCS-LC, LCCS-LU, LCCS-SH
                    _write(root / f"{season}_lc" / f"lc_{scene}" / f"{season}_lc_{stem}.tif", lc, crs)
                names.setdefault(f"{season}/{scene}", []).append(f"{season}_{scene}_p{patch}")
    return names


def luojia(root: Path, size: int = 32, splits=None, bands: int = 13, legend: bool = True) -> dict[str, list[str]]:
    """LuojiaSET-OSFCR's default layout: ``cloudy/ sar/ clear/ label/`` with matching names,
    ``train.txt`` / ``val.txt`` / ``test.txt``, and a legend."""
    splits = splits or {"train": ["000001", "000002", "000003"], "val": ["000101"], "test": ["000201", "000202"]}
    i = 0
    for split, names in splits.items():
        (root / f"{split}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            s = make_scene(4321, i, size)
            i += 1
            crs = "EPSG:32650"
            _write(root / "cloudy" / f"{name}.tif", s.optical_cloudy[:bands].astype(np.uint16), crs)
            _write(root / "clear" / f"{name}.tif", s.optical_clear[:bands].astype(np.uint16), crs)
            _write(root / "sar" / f"{name}.tif", s.sar.astype(np.float32), crs)
            _write(root / "label" / f"{name}.tif", s.labels[None].astype(np.uint8), crs, nodata=255)
    if legend:
        from tdpcr_edge.data.synthetic import CLASS_COLORS, CLASS_NAMES

        (root / "legend.json").write_text(json.dumps({"classes": list(CLASS_NAMES), "colors": [list(c) for c in CLASS_COLORS]}))
    return splits


LUOJIA_FOLDERS = ("0-20%", "20%-40%", "40%-60%", "60%-80%", "80%-100%")


def luojia_published(
    root: Path, size: int = 32, per_folder: int = 20, offset: int = 1000, folders=LUOJIA_FOLDERS, legend: bool = False
) -> dict[str, list[str]]:
    """LuojiaSET-OSFCR as published: per cloud-cover folder ``s1/ s2/ s2_cloudy/
    cloud_detection_results/ land_cover_maps/`` with ``ROIs_<RR>_<modality>_p<N>.tif``, no split
    lists, 7 land-cover classes (ids 0 and 2..6 used, as in the samples), ``offset`` added to
    every optical DN (processing baseline 04.00). Returns each folder's ``ROIs_<RR>_p<N>`` keys."""
    keys: dict[str, list[str]] = {}
    i = 0
    for folder in folders:
        for j in range(per_folder):
            s = make_scene(2468, i, size)
            i += 1
            crs, region, patch = "EPSG:32650", f"{j % 6 + 1:02d}", 100 + j
            d = root / folder
            _write(d / "s1" / f"ROIs_{region}_s1_p{patch}.tif", s.sar.astype(np.float32), crs)
            _write(d / "s2" / f"ROIs_{region}_s2_p{patch}.tif", (s.optical_clear + offset).astype(np.uint16), crs)
            _write(d / "s2_cloudy" / f"ROIs_{region}_s2_cloudy_p{patch}.tif", (s.optical_cloudy + offset).astype(np.uint16), crs)
            mask = (s.cloud > 0.5).astype(np.float32)[None]
            _write(d / "cloud_detection_results" / f"ROIs_{region}_s2_cloudy_p{patch}.tif", mask, crs)
            lc = np.where(s.labels == 0, 0, s.labels + 1).astype(np.uint8)[None]
            _write(d / "land_cover_maps" / f"ROIs_{region}_s2_p{patch}.tif", lc, crs)
            keys.setdefault(folder, []).append(f"ROIs_{region}_p{patch}")
    if legend:
        names = ["water", "unused", "tree cover", "cropland", "built-up", "bare soil", "grassland"]
        (root / "legend.json").write_text(json.dumps({"classes": names, "colors": [[i * 30, 100, 200 - i * 20] for i in range(7)]}))
    return keys


def pairs(root: Path, size: int = 32, rows: int = 2) -> Path:
    """Loose co-registered GeoTIFFs and a pairs CSV (relative paths)."""
    lines = ["optical,sar,clear,labels,name"]
    for i in range(rows):
        s = make_scene(99, i, size)
        _write(root / f"img{i}_s2.tif", s.optical_cloudy.astype(np.uint16), "EPSG:32631")
        _write(root / f"img{i}_s1.tif", s.sar.astype(np.float32), "EPSG:32631")
        _write(root / f"img{i}_clear.tif", s.optical_clear.astype(np.uint16), "EPSG:32631")
        _write(root / f"img{i}_lc.tif", s.labels[None].astype(np.uint8), "EPSG:32631", nodata=255)
        lines.append(f"img{i}_s2.tif,img{i}_s1.tif,img{i}_clear.tif,img{i}_lc.tif,site{i}")
    (root / "pairs.csv").write_text("\n".join(lines) + "\n")
    return root / "pairs.csv"


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    sen12mscr(out / "sen12mscr")
    luojia(out / "luojia")
    luojia_published(out / "luojia_published")
    pairs(out / "pairs")
    print(f"wrote {out}/sen12mscr, {out}/luojia, {out}/luojia_published, {out}/pairs")
