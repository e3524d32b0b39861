"""Scene folders as written by ``tdpcr-edge synth``: one sub-folder per scene holding
``optical_cloudy.tif``, ``sar.tif`` and, when known, ``optical_clear.tif``, ``labels.tif``
and ``cloud.tif``, all on one grid. Reading verifies the layout and raises a DataError
that names the offending file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.transform import from_origin

from ..errors import DataError
from ..io_utils import atomic_dir, write_json
from .normalize import Normalization
from .synthetic import CLASS_COLORS, CLASS_NAMES, CRS, PIXEL_SIZE_M, Scene

FILES = {
    "optical": "optical_cloudy.tif",
    "sar": "sar.tif",
    "clear": "optical_clear.tif",
    "labels": "labels.tif",
    "cloud": "cloud.tif",
}
REQUIRED = ("optical", "sar")
IGNORE_INDEX = 255


def _profile(h: int, w: int, count: int, dtype: str, origin: tuple[float, float], nodata=None) -> dict:
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": count,
        "dtype": dtype,
        "crs": CRS,
        "transform": from_origin(origin[0], origin[1], PIXEL_SIZE_M, PIXEL_SIZE_M),
        "compress": "deflate",
        "nodata": nodata,
    }
    if h % 16 == 0 and w % 16 == 0:
        profile.update(tiled=True, blockxsize=min(256, w), blockysize=min(256, h))
    return profile


# GeoTIFF metadata item on every optical and SAR image of the synthetic world, so that the
# shipped checkpoint (which learnt that world only) can say when it is shown anything else.
SYNTHETIC_TAG = "TDPCR_SYNTHETIC"


def write_scene(
    folder: str | Path, scene: Scene, norm: Normalization = Normalization(), num_classes: int = 6, layout: str = "stack"
) -> Path:
    """Write one scene folder atomically (it appears complete or not at all); ``layout`` is how
    the cloudy optical and the SAR are laid out (``layouts``), the other layers being plain
    GeoTIFFs on the 10 m grid."""
    from .layouts import write_safe, write_sar_files, write_stac

    folder = Path(folder)
    h, w = scene.labels.shape
    tag = {SYNTHETIC_TAG: "1"}
    with atomic_dir(folder) as tmp:
        layers = [("clear", scene.optical_clear, "uint16", norm.optical_bands)]
        if layout == "stack":
            layers += [("optical", scene.optical_cloudy, "uint16", norm.optical_bands), ("sar", scene.sar, "float32", norm.sar_bands)]
        elif layout == "safe":
            write_safe(tmp, scene.optical_cloudy, norm.optical_bands, scene.origin, CRS, tag)
        else:
            write_stac(tmp, scene.optical_cloudy, norm.optical_bands, scene.origin, CRS, tag)
        if layout != "stack":
            write_sar_files(tmp, scene.sar, _profile(h, w, 1, "float32", scene.origin), tag)
        for key, data, dtype, names in layers:
            with rasterio.open(tmp / FILES[key], "w", **_profile(h, w, data.shape[0], dtype, scene.origin)) as dst:
                dst.write(data)
                dst.descriptions = tuple(names)
                dst.update_tags(**tag)
        with rasterio.open(tmp / FILES["labels"], "w", **_profile(h, w, 1, "uint8", scene.origin, nodata=IGNORE_INDEX)) as dst:
            dst.write(scene.labels[None])
            dst.write_colormap(1, {i: (*CLASS_COLORS[i], 255) for i in range(num_classes)})
            dst.update_tags(classes=json.dumps(list(CLASS_NAMES[:num_classes])))
        with rasterio.open(tmp / FILES["cloud"], "w", **_profile(h, w, 1, "float32", scene.origin)) as dst:
            dst.write(scene.cloud[None])
            dst.descriptions = ("cloud thickness",)
    return folder


def scene_paths(folder: Path) -> dict[str, Path]:
    """The layers a scene folder holds, whatever its layout: the optical as optical_cloudy.tif,
    a SAFE product or a STAC item; the SAR as sar.tif or s1_vv.tif + s1_vh.tif (a ``VV,VH``
    argument)."""
    from .layouts import SAR_FILES

    paths = {k: folder / f for k, f in FILES.items() if (folder / f).exists()}
    if "optical" not in paths:
        found = sorted(folder.glob("*.SAFE")) or [p for p in [folder / "item.json"] if p.exists()]
        if found:
            paths["optical"] = found[0]
    if "sar" not in paths and all((folder / f).exists() for f in SAR_FILES):
        paths["sar"] = Path(",".join(str(folder / f) for f in SAR_FILES))
    return paths


def is_synthetic_raster(path: str | Path) -> bool:
    """Whether ``path`` is an image of the synthetic world (``tdpcr-edge synth`` tags them)."""
    try:
        with rasterio.open(path) as src:
            return src.tags().get(SYNTHETIC_TAG) == "1"
    except (OSError, RasterioError):
        return False


def write_legend(root: str | Path, num_classes: int, **extra) -> None:
    write_json(
        Path(root) / "legend.json",
        {"classes": list(CLASS_NAMES[:num_classes]), "colors": [list(c) for c in CLASS_COLORS[:num_classes]], **extra},
    )


@dataclass
class SceneArrays:
    """One scene in model space: float32 in [0, 1] (labels int64, 255 = ignore).
    ``valid`` is False where any input pixel is nodata or NaN."""

    name: str
    optical: np.ndarray
    sar: np.ndarray
    valid: np.ndarray
    clear: np.ndarray | None = None
    labels: np.ndarray | None = None
    cloud: np.ndarray | None = None


def _read(path: Path, expected_bands: int | None, what: str, select: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``select``: 1-based bands to read (a data set's band selection); the count check
    then applies to the selection."""
    try:
        with rasterio.open(path) as src:
            if select and max(select) > src.count:
                raise DataError(f"{path}: {what} has {src.count} bands, but band {max(select)} was selected; fix the band selection")
            count = len(select) if select else src.count
            if expected_bands is not None and count != expected_bands:
                raise DataError(
                    f"{path}: {what} has {count} bands, expected {expected_bands}; "
                    "pass the right file or a model trained on this band count"
                )
            data = src.read(list(select)) if select else src.read()
            nodata_mask = (src.read_masks(list(select)) if select else src.read_masks()) == 0  # per band: True where nodata
            meta = {"crs": src.crs, "transform": src.transform, "shape": (src.height, src.width)}
    except RasterioError as exc:
        raise DataError(f"{path}: cannot read {what} as a GeoTIFF ({exc}); re-create or re-download the file") from exc
    invalid = nodata_mask.any(axis=0)
    if np.issubdtype(data.dtype, np.floating):
        invalid |= ~np.isfinite(data).all(axis=0)
    return data, invalid, meta


def find_scenes(root: str | Path) -> list[Path]:
    """Scene folders under ``root`` (or ``root`` itself when it is one), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found; write one with `tdpcr-edge synth {root}` or fix the path")
    if "optical" in scene_paths(root):
        return [root]
    scenes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not scenes:
        raise DataError(f"{root}: no scene folders inside; expected sub-folders holding {FILES['optical']} and {FILES['sar']}")
    return scenes


def read_scene(folder: str | Path, norm: Normalization = Normalization(), need: tuple[str, ...] = ()) -> SceneArrays:
    """Read and check one scene folder. ``need`` names optional layers that must exist."""
    folder = Path(folder)
    paths = scene_paths(folder)
    for key in (*REQUIRED, *need):
        if key not in paths:
            raise DataError(f"{folder / FILES[key]}: missing; every scene folder needs {', '.join(FILES[k] for k in (*REQUIRED, *need))}")
    return read_layers(folder.name, paths, norm)


def read_layers(
    name: str,
    paths: dict[str, Path],
    norm: Normalization = Normalization(),
    labels: Callable[[np.ndarray, Path], np.ndarray] | None = None,
    bands: dict[str, tuple[int, ...]] | None = None,
    optical_offset: float = 0.0,
) -> SceneArrays:
    """One sample from explicit files: ``optical`` and ``sar`` required; ``clear``,
    ``labels`` and ``cloud`` when given. All must share one grid. ``labels`` maps the raw
    label band to class ids (data sets with their own class codes); ``bands`` selects
    1-based raster bands per layer; ``optical_offset`` DN are taken off the optical and
    clear images before they are normalised."""
    bands = bands or {}
    if bands.get("optical"):  # a layout's explicit band numbers (LuojiaSET-OSFCR)
        optical_raw, invalid, ref = _read(paths["optical"], len(norm.optical_bands), "cloudy optical", bands.get("optical"))
        sar_raw, sar_invalid, meta = _read(paths["sar"], len(norm.sar_bands), "SAR", bands.get("sar"))
        _check_grid(paths["sar"], meta, paths["optical"], ref)
        clear_read = lambda p: _read(p, len(norm.optical_bands), "clear optical", bands.get("optical"))  # noqa: E731
    else:
        # Bands by name from whatever layout the files have (a stack, band files, a STAC item).
        optical_raw, invalid, ref, grid = _read_bands(paths["optical"], norm, "optical")
        sar_raw, sar_invalid, _, _ = _read_bands(paths["sar"], norm, "SAR", grid)
        clear_read = lambda p: _read_bands(p, norm, "clear optical", grid)[:3]  # noqa: E731
    invalid |= sar_invalid
    scene = SceneArrays(
        name=name,
        optical=norm.optical_to_model(optical_raw - np.float32(optical_offset) if optical_offset else optical_raw),
        sar=norm.sar_to_model(np.nan_to_num(sar_raw, nan=norm.sar_min_db[0])),
        valid=~invalid,
    )
    if "clear" in paths:
        clear, bad, meta = clear_read(paths["clear"])
        _check_grid(paths["clear"], meta, paths["optical"], ref)
        scene.clear = norm.optical_to_model(clear - np.float32(optical_offset) if optical_offset else clear)
        scene.valid &= ~bad
    if "labels" in paths:
        raw, bad, meta = _read(paths["labels"], None if labels else 1, "labels", bands.get("labels"))
        _check_grid(paths["labels"], meta, paths["optical"], ref)
        ids = labels(raw[0], paths["labels"]) if labels else raw[0]
        scene.labels = np.where(bad, IGNORE_INDEX, ids).astype(np.int64)
    if "cloud" in paths:
        cloud, _, meta = _read(paths["cloud"], 1, "cloud thickness")
        _check_grid(paths["cloud"], meta, paths["optical"], ref)
        scene.cloud = np.nan_to_num(cloud[0].astype(np.float32), nan=0.0)
    scene.optical = np.where(scene.valid[None], scene.optical, 0.0).astype(np.float32)
    scene.sar = np.where(scene.valid[None], scene.sar, 0.0).astype(np.float32)
    return scene


def _read_bands(path, norm: Normalization, what: str, grid=None):
    """The model's bands of an optical (or SAR) input, whole, on ``grid`` or its own finest:
    (data, invalid, grid meta, grid)."""
    from .bandstack import BandStack
    from .inputs import resolve_optical, resolve_sar

    bands = resolve_sar(path, norm.sar_bands) if what == "SAR" else resolve_optical(path, norm.optical_bands, norm.optical_scale)
    # Another layer's own files may be on other grids (band files at 10/20/60 m) and are
    # resampled onto the optical's; a plain raster must already be on it.
    with BandStack(
        bands,
        what,
        grid=grid,
        align=grid is None or bands.layout not in ("stack", "SAR raster"),
        misfit="co-register the rasters onto one grid",
    ) as stack:
        data, valid = stack.read_valid(None)
        meta = {"crs": stack.crs, "transform": stack.transform, "shape": (stack.height, stack.width)}
        g = stack.grid
    invalid = ~valid
    if np.issubdtype(data.dtype, np.floating):
        invalid |= ~np.isfinite(data).all(axis=0)
    return data, invalid, meta, g


def _check_grid(path: Path, meta: dict, ref_path: Path, ref: dict) -> None:
    if meta["shape"] != ref["shape"]:
        raise DataError(
            f"{path}: size {meta['shape'][1]}x{meta['shape'][0]} differs from {ref_path.name} "
            f"({ref['shape'][1]}x{ref['shape'][0]}); co-register the rasters onto one grid"
        )
    if meta["crs"] != ref["crs"] or not meta["transform"].almost_equals(ref["transform"]):
        raise DataError(f"{path}: CRS or transform differs from {ref_path.name}; co-register the rasters onto one grid")


def read_legend(root: str | Path) -> tuple[list[str], list[tuple[int, int, int]]] | None:
    """Class names and colours from ``root/legend.json`` (or ``root`` when it is the file)."""
    path = Path(root)
    path = path / "legend.json" if path.is_dir() else path
    if not path.exists():
        return None
    from ..records import check
    from ..records.data import LegendRecord

    fix = "expected {'classes': [...], 'colors': [[r, g, b], ...]}"
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a valid legend ({exc}); {fix}") from None
    check(d, LegendRecord, path, fix, DataError)
    return list(d["classes"]), [tuple(c) for c in d["colors"]]
