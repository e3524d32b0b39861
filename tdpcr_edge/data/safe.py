"""A Sentinel-2 SAFE product's metadata: where MTD_MSIL1C.xml / MTD_MSIL2A.xml is, and the per-band
radiometric offsets it states (baseline 04.00 and later)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import DataError
from .bands import S2_BANDS


def find_safe_metadata(folder: Path) -> Path | None:
    """A SAFE product's ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, in the folder or above it
    (a user may pass the product, its granule or its ``IMG_DATA/R10m``)."""
    for d in [folder, *list(folder.resolve().parents)[:5]]:
        hits = sorted(d.glob("MTD_MSIL*.xml"))
        if hits:
            return hits[0]
    return None


def safe_offsets(mtd: Path, optical_scale: float = 10000.0) -> dict[str, tuple[float, float]]:
    """Per band (scale, offset) in the model's DN from a SAFE product's metadata. Since baseline
    04.00 reflectance = (DN + ADD_OFFSET) / QUANTIFICATION_VALUE, ADD_OFFSET = -1000; earlier
    products state no offset. ``band_id`` counts the 13 bands in the product order."""
    try:
        root = ET.parse(mtd).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DataError(f"{mtd}: unreadable product metadata ({exc}); re-download the product") from exc
    quant, adds = None, {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE") and el.text:
            quant = float(el.text)
        elif tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and el.text:
            adds[list(S2_BANDS)[int(el.get("band_id", -1))]] = float(el.text)
    if not adds:
        return {}
    # The model's DN are reflectance x optical_scale: the product's quantification rescaled to it.
    scale = optical_scale / quant if quant else 1.0
    return {b: (scale, a * scale) for b, a in adds.items()}
