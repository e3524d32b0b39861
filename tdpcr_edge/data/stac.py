"""A STAC item's raster assets, read with pystac and its eo and raster extensions: which asset
holds which band, where it is (as GDAL opens it), and the scale, offset and nodata the raster
extension states. Anything pystac or the extensions cannot read raises a built-in error that
``inputs.stac_item`` turns into one line naming the item."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .bands import canonical

S2_NODATA = 0  # Sentinel-2 products mark no data with 0 in every band
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2")


def stac_assets(path: Path) -> tuple[dict[str, str], dict[str, tuple]]:
    """{band: GDAL path} of an item's raster assets, and {band: (scale, offset, nodata)} from
    its raster extension (None where the item states none; nodata defaults to Sentinel-2's).
    pystac's own errors (none derives from a built-in one) come out as ValueError."""
    import pystac.errors

    pystac_errors = tuple(
        c for c in vars(pystac.errors).values() if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == "pystac.errors"
    )
    try:
        return _assets(path)
    except pystac_errors as exc:
        raise ValueError(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _assets(path: Path) -> tuple[dict[str, str], dict[str, tuple]]:
    import pystac
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.raster import RasterExtension

    item = pystac.Item.from_dict(json.loads(path.read_text()), href=str(path))
    found: dict[str, str] = {}
    raster: dict[str, tuple] = {}
    for key, asset in item.assets.items():
        href, kind = asset.href, asset.media_type or ""
        if not isinstance(href, str) or not isinstance(kind, str):
            raise TypeError(f"assets.{key}: href and type must be strings")
        if not (href.lower().split("?")[0].endswith(RASTER_SUFFIXES) or "image/tiff" in kind or "image/jp2" in kind):
            continue
        named = _stac_band_names(asset, EOExtension)
        band = canonical(named[0]) if len(named) == 1 else None
        band = band or canonical(re.sub(r"-jp2$", "", key))
        if band is None:
            continue
        if band in found and found[band].lower().endswith(".tif") and not href.lower().endswith(".tif"):
            continue  # a COG beats its JP2 twin
        found[band] = _href(href, path.parent)
        raster[band] = _stac_radiometry(key, asset, RasterExtension)
    return found, raster


def _stac_band_names(asset, eo) -> list[str]:
    if eo.has_extension(asset.owner) if asset.owner is not None else False:
        bands = eo.ext(asset).bands or []
        names = [b.name for b in bands]
    else:  # not declared in stac_extensions, or STAC 1.1's common ``bands``
        raw = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
        names = [b.get("name") for b in raw if isinstance(b, dict)] if isinstance(raw, list) else []
    if not all(isinstance(n, str) for n in names):
        raise TypeError("eo:bands names must be strings")
    return names


def _stac_radiometry(key: str, asset, raster_ext) -> tuple:
    if asset.owner is not None and raster_ext.has_extension(asset.owner):
        bands = raster_ext.ext(asset).bands or []
        first = bands[0].properties if bands else {}
    else:
        raw = asset.extra_fields.get("raster:bands") or [{}]
        first = raw[0] if isinstance(raw, list) and raw else {}
    if not isinstance(first, dict):
        raise TypeError(f"assets.{key}.raster:bands[0] must be an object")
    scale, off, nodata = first.get("scale"), first.get("offset"), first.get("nodata", S2_NODATA)
    for name, v in (("scale", scale), ("offset", off), ("nodata", nodata)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise TypeError(f"assets.{key}.raster:bands[0].{name} must be a number, not {type(v).__name__}")
    if scale is None and off is None:
        return None, None, nodata
    return float(1.0 if scale is None else scale), float(0.0 if off is None else off), nodata


def _href(href: str, base: Path) -> str:
    if href.startswith(("http://", "https://")):
        return f"/vsicurl/{href}"
    if href.startswith("s3://"):
        return f"/vsis3/{href[5:]}"
    if href.startswith("file://"):
        href = href[7:]
    p = Path(href)
    return str(p if p.is_absolute() else (base / p).resolve())
