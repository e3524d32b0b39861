"""Synthetic scenes written the way real products come, so tests and the demo read them through
the same code as real data (``tdpcr-edge synth --layout``):

    stack   optical_cloudy.tif: every band at 10 m, named by its description (the default)
    safe    a Sentinel-2 SAFE product: one JP2 per band at its native 10/20/60 m under
            GRANULE/*/IMG_DATA (R10m/R20m/R60m for Level-2A), MTD_MSIL2A.xml (or MTD_MSIL1C.xml
            when B10 is among the bands) stating baseline 05.10's offset (DN = reflectance x
            10000 + 1000); Sentinel-1 as s1_vv.tif and s1_vh.tif in linear power
    stac    one COG per band at its native resolution in optical/, and item.json listing them
            (relative hrefs, eo:bands, raster:bands scale 0.0001 / offset -0.1); SAR as in safe

Coarser bands are the 10 m world block-averaged, as the sensor integrates a larger footprint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from ..errors import ConfigError
from .bands import S2_BANDS

LAYOUTS = ("stack", "safe", "stac")
BASELINE_OFFSET = 1000  # DN added since processing baseline 04.00
TILE_ID, SENSED = "T32TQM", "20240101T101431"
SAR_FILES = ("s1_vv.tif", "s1_vh.tif")


def check_layout(layout: str, size: int, bands: tuple[str, ...]) -> None:
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: choose {', '.join(LAYOUTS)}")
    if layout != "stack":
        f = max(S2_BANDS[b][1] for b in bands) // 10
        if size % f:
            raise ConfigError(f"--size {size}: a {layout} layout holds bands at {f * 10} m, so the size must be a multiple of {f}")


def native(dn: np.ndarray, band: str) -> np.ndarray:
    """A 10 m band at its native resolution: the mean of each f x f block, rounded."""
    f = S2_BANDS[band][1] // 10
    if f == 1:
        return dn
    h, w = dn.shape
    return np.rint(dn.reshape(h // f, f, w // f, f).astype(np.float64).mean(axis=(1, 3))).astype(np.uint16)


def _offset(dn: np.ndarray) -> np.ndarray:
    # With the offset no valid pixel is 0, which is left to mean no data, as in the products.
    return np.minimum(dn.astype(np.int64) + BASELINE_OFFSET, 65535).astype(np.uint16)


def _write_band(path: Path, data: np.ndarray, band: str, origin: tuple[float, float], crs: str, tags: dict, driver: str = "GTiff") -> None:
    res = S2_BANDS[band][1]
    h, w = data.shape
    opts = (
        dict(QUALITY=100, REVERSIBLE="YES")
        if driver == "JP2OpenJPEG"
        else dict(
            compress="deflate",
            **({"tiled": True, "blockxsize": 256, "blockysize": 256} if h % 16 == 0 and w % 16 == 0 and h >= 256 else {}),
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver=driver, width=w, height=h, count=1, dtype="uint16", crs=crs, transform=from_origin(*origin, res, res), **opts
    ) as dst:
        dst.write(data[None])
        if driver == "GTiff":
            dst.descriptions = (band,)
        dst.update_tags(**tags)


def write_safe(folder: Path, dn: np.ndarray, bands: tuple[str, ...], origin, crs: str, tags: dict) -> Path:
    """A SAFE product of the 10 m digital numbers ``dn`` (bands x H x W); returns its folder."""
    level = "L1C" if "B10" in bands else "L2A"
    product = folder / f"S2B_MSI{level}_{SENSED}_N0510_R022_{TILE_ID}_{SENSED[:8]}T120000.SAFE"
    img = product / "GRANULE" / f"{level}_{TILE_ID}_A000000_{SENSED}" / "IMG_DATA"
    for i, band in enumerate(bands):
        res = S2_BANDS[band][1]
        name = f"{TILE_ID}_{SENSED}_{band}_{res}m.jp2" if level == "L2A" else f"{TILE_ID}_{SENSED}_{band}.jp2"
        path = img / f"R{res}m" / name if level == "L2A" else img / name
        _write_band(path, _offset(native(dn[i], band)), band, origin, crs, tags, driver="JP2OpenJPEG")
    (product / f"MTD_MSI{level}.xml").write_text(_mtd(level))
    return product


def _mtd(level: str) -> str:
    """The parts of a product's metadata that say how DN become reflectance."""
    ids = range(len(S2_BANDS))
    if level == "L2A":
        quant = (
            '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE><AOT_QUANTIFICATION_VALUE '
            'unit="none">1000.0</AOT_QUANTIFICATION_VALUE>'
        )
        offsets = (
            "<BOA_ADD_OFFSET_VALUES_LIST>"
            + "".join(f'<BOA_ADD_OFFSET band_id="{i}">-{BASELINE_OFFSET}</BOA_ADD_OFFSET>' for i in ids)
            + "</BOA_ADD_OFFSET_VALUES_LIST>"
        )
        quant = f"<QUANTIFICATION_VALUES_LIST>{quant}</QUANTIFICATION_VALUES_LIST>"
    else:
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offsets = (
            "<Radiometric_Offset_List>"
            + "".join(f'<RADIO_ADD_OFFSET band_id="{i}">-{BASELINE_OFFSET}</RADIO_ADD_OFFSET>' for i in ids)
            + "</Radiometric_Offset_List>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-{level[1:]}_User_Product '
        f'xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{level[1:]}.xsd">'
        f"<n1:General_Info><Product_Info><PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL><PROCESSING_BASELINE>05.10</PROCESSING_BASELINE></Product_Info>"
        f"<Product_Image_Characteristics>{quant}{offsets}</Product_Image_Characteristics></n1:General_Info></n1:Level-{level[1:]}_User_Product>\n"
    )


def write_stac(folder: Path, dn: np.ndarray, bands: tuple[str, ...], origin, crs: str, tags: dict) -> Path:
    """Band COGs in ``optical/`` and the STAC item listing them; returns the item's path."""
    assets = {}
    for i, band in enumerate(bands):
        data = _offset(native(dn[i], band))
        _write_band(folder / "optical" / f"{band}.tif", data, band, origin, crs, tags)
        wl, res = S2_BANDS[band]
        assets[band] = {
            "href": f"optical/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": band, "center_wavelength": wl / 1000}],
            "gsd": res,
            "raster:bands": [
                {"nodata": 0, "data_type": "uint16", "scale": 0.0001, "offset": -BASELINE_OFFSET / 10000, "spatial_resolution": res}
            ],
        }
    h, w = dn.shape[1:]
    item = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"S2B_{TILE_ID[1:]}_{SENSED[:8]}_0_L2A",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
        ],
        "geometry": None,
        "bbox": [origin[0], origin[1] - 10 * h, origin[0] + 10 * w, origin[1]],
        "properties": {"datetime": "2024-01-01T10:14:31Z", "proj:code": crs},
        "links": [],
        "assets": assets,
    }
    path = folder / "item.json"
    path.write_text(json.dumps(item, indent=1))
    return path


def write_sar_files(folder: Path, db: np.ndarray, profile: dict, tags: dict) -> None:
    """VV and VH as separate files of linear power (sigma0), as Sentinel-1 tools export them."""
    for name, band in zip(SAR_FILES, db):
        with rasterio.open(folder / name, "w", **{**profile, "count": 1, "dtype": "float32"}) as dst:
            dst.write((10.0 ** (band.astype(np.float64) / 10.0)).astype(np.float32)[None])
            dst.update_tags(**tags)
