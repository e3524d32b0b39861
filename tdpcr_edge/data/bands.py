"""Sentinel-2 bands by name: centre wavelengths, native resolutions, the presets a model is
trained on (``--bands s2-l1c``, ``s2-l2a``, ``s2-rgbn`` or a list), and the names under
which catalogues and file names carry them."""

from __future__ import annotations

import re

from ..errors import ConfigError

# name: (centre wavelength in nm, native resolution in m), in the products' own order.
S2_BANDS: dict[str, tuple[float, int]] = {
    "B01": (443, 60),
    "B02": (490, 10),
    "B03": (560, 10),
    "B04": (665, 10),
    "B05": (705, 20),
    "B06": (740, 20),
    "B07": (783, 20),
    "B08": (842, 10),
    "B8A": (865, 20),
    "B09": (945, 60),
    "B10": (1375, 60),
    "B11": (1610, 20),
    "B12": (2190, 20),
}
PRESETS: dict[str, tuple[str, ...]] = {
    "s2-l1c": tuple(S2_BANDS),  # Level-1C, top of atmosphere: all 13
    "s2-l2a": tuple(b for b in S2_BANDS if b != "B10"),  # Level-2A drops the cirrus band
    "s2-rgbn": ("B02", "B03", "B04", "B08"),  # the four 10 m bands
}
DEFAULT = "s2-l1c"
SAR_POLARISATIONS = ("VV", "VH")
# STAC asset keys and common names of the Sentinel-2 bands (Earth Search, Planetary Computer).
ALIASES: dict[str, str] = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}
_FILE_BAND = re.compile(r"(?:^|[_.-])(B(?:0[1-9]|1[0-2]|8A))(?:_(\d+)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)


def parse_bands(spec: str | None) -> tuple[str, ...]:
    """``s2-l1c``, ``s2-l2a``, ``s2-rgbn`` or a comma-separated list of Sentinel-2 band names."""
    spec = (spec or DEFAULT).strip()
    if spec in PRESETS:
        return PRESETS[spec]
    names = tuple(canonical(b) or b for b in spec.split(",") if b.strip())
    unknown = [b for b in names if b not in S2_BANDS]
    if unknown or not names:
        raise ConfigError(
            f"--bands {spec!r}: {', '.join(unknown) or 'no band'} is not a Sentinel-2 band; "
            f"pass a preset ({', '.join(PRESETS)}) or names from {','.join(S2_BANDS)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"--bands {spec!r}: a band is listed twice")
    return names


def canonical(name: str | None) -> str | None:
    """``B02``, ``b2``, ``B2``, ``blue`` -> ``B02``; None for anything else."""
    if not name:
        return None
    n = name.strip()
    if n.lower() in ALIASES:
        return ALIASES[n.lower()]
    m = re.fullmatch(r"[Bb](\d{1,2}|8[Aa])", n)
    if not m:
        return None
    code = m[1].upper()
    code = code if code == "8A" else f"{int(code):02d}"
    return f"B{code}" if f"B{code}" in S2_BANDS else None


def preset_name(bands: tuple[str, ...]) -> str:
    """The preset these bands are, or the list itself."""
    return next((k for k, v in PRESETS.items() if tuple(bands) == v), ",".join(bands))


def band_of_file(name: str) -> tuple[str, int | None] | None:
    """``T32TQM_20220101T101431_B8A_20m.jp2`` -> (``B8A``, 20); None when the name holds no band."""
    m = _FILE_BAND.search(name)
    return (m[1].upper(), int(m[2]) if m[2] else None) if m else None


def missing_band_hint(missing: str, bands: tuple[str, ...]) -> str:
    """What to do when input lacks a band the model was trained on."""
    trained = preset_name(bands)
    if missing == "B10" and trained == "s2-l1c":
        return f"{missing} is missing: this model was trained on s2-l1c; train with --bands s2-l2a for Level-2A data"
    return (
        f"{missing} is missing: this model was trained on {trained}; pass input holding it, or train with --bands naming the bands you have"
    )


def index_of(bands: tuple[str, ...], *wanted: str) -> int | None:
    """Index of the first of ``wanted`` among ``bands`` (blue for a cloud score, and so on)."""
    return next((bands.index(w) for w in wanted if w in bands), None)
