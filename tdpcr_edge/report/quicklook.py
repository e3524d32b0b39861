"""Quick-look PNGs: what a person looks at first to see whether the model works."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..io_utils import atomic_path  # noqa: E402

RGB_BANDS = (3, 2, 1)  # B04, B03, B02 in the 13-band Sentinel-2 order
RGB_GAIN = 3.5  # the usual true-colour stretch of top-of-atmosphere reflectance


def rgb_indices(names: Sequence[str] | None) -> tuple[int, ...]:
    """Where red, green and blue (B04, B03, B02) are among a model's bands; the first three
    (or one, as grey) for bands without them."""
    if not names:
        return RGB_BANDS
    names = list(names)
    if all(b in names for b in ("B04", "B03", "B02")):
        return tuple(names.index(b) for b in ("B04", "B03", "B02"))
    return (0, 1, 2) if len(names) >= 3 else (0, 0, 0)


def true_color(optical: np.ndarray, bands: Sequence[int] = RGB_BANDS) -> np.ndarray:
    return np.clip(optical[list(bands)].transpose(1, 2, 0) * RGB_GAIN, 0.0, 1.0)


def sar_color(sar: np.ndarray) -> np.ndarray:
    """VV, VH, VV/VH false colour on normalised [0, 1] backscatter."""
    vv, vh = sar[0], sar[1] if sar.shape[0] > 1 else sar[0]
    return np.clip(np.stack([vv, vh, np.clip(vv - vh + 0.5, 0, 1)], axis=-1), 0.0, 1.0)


def class_color(classes: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    lut = np.zeros((256, 3), np.float32)
    lut[: len(colors)] = np.asarray(colors, np.float32) / 255.0
    return lut[classes.astype(np.uint8)]


def scalar_color(values: np.ndarray) -> np.ndarray:
    """A non-negative map (a predicted variance) in magma from 0 to its 99th percentile: a few
    extreme pixels (cloud edges) would otherwise leave the rest one colour. NaN (nodata) black."""
    finite = np.isfinite(values)
    top = float(np.percentile(values[finite], 99)) if finite.any() else 1.0
    scaled = np.clip(np.where(finite, values, 0.0) / (top if top > 0 else 1.0), 0.0, 1.0)
    img = plt.get_cmap("magma")(scaled)[..., :3]
    img[~finite] = 0.0
    return img


def save_quicklook(
    path: str | Path, rows: list[dict], class_names: Sequence[str], colors: Sequence[Sequence[int]], bands: Sequence[str] | None = None
) -> Path:
    """One row per scene. Each row dict holds ``title`` and panels as named arrays:
    cloudy (C x H x W), sar, reconstruction, classes (H x W), uncertainty (H x W), truth
    (H x W); a panel no row has is left out. ``bands`` names the optical bands (true colour
    from B04, B03, B02)."""
    rgb = rgb_indices(bands)
    columns = [
        ("cloudy", "cloudy input"),
        ("sar", "SAR (VV, VH)"),
        ("reconstruction", "reconstruction"),
        ("classes", "classes"),
        ("uncertainty", "uncertainty (variance)"),
        ("truth", "truth"),
    ]
    columns = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.6 * len(columns), 2.6 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        for c, (key, title) in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            value = row.get(key)
            if value is None:
                ax.set_axis_off()
                continue
            if key in ("cloudy", "reconstruction"):
                img = true_color(value, rgb)
            elif key == "sar":
                img = sar_color(value)
            elif key == "uncertainty":
                img = scalar_color(value)
            else:
                img = class_color(value, colors)
            ax.imshow(img, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=10)
            if c == 0:
                ax.set_ylabel(row.get("title", ""), fontsize=9)
    legend = any(key in ("classes", "truth") for key, _ in columns)  # no class panel, no class legend
    if legend:
        handles = [Patch(color=np.asarray(col) / 255.0, label=name) for name, col in zip(class_names, colors)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.06 if len(rows) > 1 else 0.1) if legend else 0, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def scene_quicklook(path, reader, out, meta: dict, labels=None, max_side: int = 768) -> None:
    """A decimated look at a streamed scene: cloudy input, SAR, reconstruction, and of the
    model's other outputs (``meta["outputs"]``) the classes (with the truth when labels are
    given) and the uncertainty; read through overviews, never at full size."""
    import rasterio
    from rasterio.enums import Resampling

    from ..data.normalize import Normalization

    norm = Normalization.from_dict(meta["normalization"])
    f = max(1, -(-max(reader.height, reader.width) // max_side))
    shape = (max(1, reader.height // f), max(1, reader.width // f))

    def read(src, resampling=Resampling.average):
        return src.read(out_shape=(src.count, *shape), resampling=resampling)

    cloudy = norm.optical_to_model(read(reader.opt))
    sar = norm.sar_to_model(np.nan_to_num(read(reader.sar_src), nan=norm.sar_min_db[0]))
    with rasterio.open(out / "reconstruction.tif") as src:
        recon = norm.optical_to_model(read(src))
    outputs = meta["outputs"]
    classes = truth = uncertainty = None
    if "segmentation" in outputs:
        with rasterio.open(out / "classes.tif") as src:
            classes = read(src, Resampling.nearest)[0]
        if labels:  # the classes' truth: nothing to compare with where the model has none
            with rasterio.open(labels) as src:
                truth = read(src, Resampling.nearest)[0]
    if "uncertainty" in outputs:
        with rasterio.open(out / "uncertainty.tif") as src:
            uncertainty = read(src)[0]
    row = {
        "title": Path(reader.optical_path).stem,
        "cloudy": cloudy,
        "sar": sar,
        "reconstruction": recon,
        "classes": classes,
        "uncertainty": uncertainty,
        "truth": truth,
    }
    save_quicklook(path, [row], meta["classes"], meta["colors"], norm.optical_bands)
