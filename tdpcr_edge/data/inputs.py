"""What an ``--optical`` or ``--sar`` argument names, resolved into the model's bands: which file
holds each band, which band of that file, and how its numbers become the model's units.

``--optical`` takes a multi-band raster (bands matched by their descriptions, else by
position), a folder or a comma-separated list of single-band files named by the Sentinel-2
convention (``*_B02.tif``, ``*_B8A_20m.jp2``; a SAFE product's folder included), or a STAC
item JSON (assets by band name, ``eo:bands`` or the catalogues' keys). ``--sar`` takes a
2-band raster or ``VV,VH`` files, in dB or linear power.

Optical numbers become the model's digital numbers (reflectance x the checkpoint's
``optical_scale``) by ``value = DN * scale + offset``, with scale and offset from where the
data says them: ``--optical-offset``, a STAC item's ``raster:bands``, a SAFE product's
``MTD_MSIL*.xml`` (``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET``, baseline 04.00 on), or the
raster's own GDAL scale/offset. The checkpoint's normalisation applies after them.
``bandstack.BandStack`` reads the result window by window on one grid."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from ..errors import DataError
from .bands import PRESETS, S2_BANDS, band_of_file, canonical, missing_band_hint, preset_name
from .safe import find_safe_metadata, safe_offsets
from .sar_units import sar_units
from .stac import RASTER_SUFFIXES, S2_NODATA, stac_assets

_POL = re.compile(r"(?:^|[_.-])(vv|vh|hh|hv)(?:[_.-]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class BandFile:
    """One model band: ``index`` (1-based) of ``path``; ``value = DN * scale + offset`` in the
    model's units (optical: reflectance x optical_scale; SAR: dB, or linear power when
    ``units`` is ``linear``, converted to dB after the scale)."""

    band: str
    path: str
    index: int = 1
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None  # what marks no data where the file itself does not say
    units: str = "dn"


@dataclass
class InputBands:
    """The files behind one argument, in the model's band order."""

    source: str
    layout: str  # "stack", "band files", "SAFE", "STAC item", "SAR raster", "SAR files"
    files: list[BandFile]
    radiometry: str = "DN as stored"
    extra: list[str] = field(default_factory=list)  # bands present and not used

    def record(self) -> dict:
        """What run.json says of the input: layout, files per band, scale/offset and where from."""
        return {
            "source": self.source,
            "layout": self.layout,
            "radiometry": self.radiometry,
            "bands": {f.band: {k: v for k, v in asdict(f).items() if k != "band" and v is not None} for f in self.files},
            **({"ignored": self.extra} if self.extra else {}),
        }


def resolve_optical(arg: str | Path, bands: tuple[str, ...], optical_scale: float = 10000.0, offset: float | None = None) -> InputBands:
    """The files holding ``bands`` (the model's) for an ``--optical`` argument."""
    text = str(arg)
    if "," in text:
        found = _band_files([Path(p.strip()) for p in text.split(",") if p.strip()], text)
        return _assemble(text, "band files", found, bands, {}, offset)
    path = Path(text)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix.lower() in RASTER_SUFFIXES and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
        files = [p for p in files if band_of_file(p.name)]
        if not files:
            raise DataError(
                f"{path}: no band files inside; expected single-band rasters named *_B02.tif, *_B8A_20m.jp2 ... (or pass a multi-band "
                "raster)"
            )
        mtd = find_safe_metadata(path)
        found = _band_files(files, text, pick_finest=True)
        adds = safe_offsets(mtd, optical_scale) if mtd else {}
        return _assemble(text, "SAFE" if mtd else "band files", found, bands, adds, offset, mtd)
    if path.suffix.lower() == ".json":
        return stac_item(path, bands, optical_scale, offset)
    return _stack(path, bands, optical_scale, offset)


def input_exists(arg: str | Path) -> bool:
    """Whether every file an argument names exists (each of a comma-separated list)."""
    return all(p.startswith("/vsi") or _exists(Path(p)) for p in str(arg).split(","))


def _exists(path: Path, file: bool = False) -> bool:
    """``path.exists()`` (``is_file()``), False for a name the system cannot hold (too long)."""
    try:
        return path.is_file() if file else path.exists()
    except OSError:
        return False


def under(base: Path, arg: str) -> Path:
    """``arg`` with each relative path of a comma-separated list taken from ``base``."""
    return Path(",".join(p if Path(p).is_absolute() else str(base / p) for p in arg.split(",")))


def _open(path: str | Path, what: str = "optical"):
    try:
        missing = not str(path).startswith("/vsi") and not _exists(Path(path), file=True)
    except OSError as exc:  # a name too long for the file system, say
        raise DataError(f"{str(path)[:200]}: {what} file cannot be looked up ({exc.strerror}); check the path") from None
    if missing:
        raise DataError(f"{path}: {what} file not found; check the path")
    try:
        return rasterio.open(path)
    except RasterioError as exc:
        raise DataError(f"{path}: cannot open {what} as a raster ({str(exc).splitlines()[0]}); re-create or re-download it") from exc


def _stack(path: Path, bands: tuple[str, ...], optical_scale: float, offset: float | None) -> InputBands:
    with _open(path) as src:
        count, descriptions = src.count, src.descriptions
        scales, offsets = src.scales, src.offsets
    names = [canonical(d) for d in descriptions]
    by_name = all(b in S2_BANDS for b in bands) and any(names)
    if by_name:
        held = {n: i + 1 for i, n in enumerate(names) if n}
    else:
        # No names: the model's own order when the count matches, else a preset's of that count.
        order = bands if count == len(bands) else next((v for v in PRESETS.values() if len(v) == count and set(bands) <= set(v)), None)
        if order is None:
            raise DataError(
                f"{path}: optical has {count} bands and no band names; the model expects {len(bands)} ({preset_name(bands)}): "
                "pass the matching raster, or name its bands (GDAL band descriptions B01, B02, ...)"
            )
        held = {n: i + 1 for i, n in enumerate(order)}
    _require(path, held, bands)
    set_in_file = any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets)
    stated = {b: _gdal_scale(scales[held[b] - 1], offsets[held[b] - 1], optical_scale) for b in bands} if set_in_file else {}
    radiometry, per_band = _radiometry(bands, offset, stated, "the raster's scale/offset", "DN as stored")
    files = [BandFile(b, str(path), held[b], *per_band.get(b, (1.0, 0.0))) for b in bands]
    return InputBands(str(path), "stack", files, radiometry, sorted(set(held) - set(bands)))


def _require(source, held, bands: tuple[str, ...]) -> None:
    """The first band the model needs and ``held`` lacks, as one line naming ``source``."""
    missing = next((b for b in bands if b not in held), None)
    if missing is not None:
        raise DataError(f"{source}: {missing_band_hint(missing, bands)}")


def _radiometry(
    bands: tuple[str, ...], offset: float | None, stated: dict[str, tuple[float, float]], where: str, unstated: str
) -> tuple[str, dict[str, tuple[float, float]]]:
    """Per band (scale, offset) and where they came from: ``--optical-offset`` before what the
    data states (``stated``, from ``where``), DN as stored when neither says anything."""
    if offset is not None:
        return f"--optical-offset {offset:g}", {b: (1.0, float(offset)) for b in bands}
    return (where, stated) if stated else (unstated, {})


def _gdal_scale(scale: float, offset: float, optical_scale: float) -> tuple[float, float]:
    """GDAL's ``unscaled = DN * scale + offset``: in reflectance when the scale is a small
    fraction (1e-4 in Sentinel-2 COGs), else in digital numbers."""
    unit = optical_scale if scale < 0.01 else 1.0
    return scale * unit, offset * unit


def _band_files(paths: list[Path], source: str, pick_finest: bool = False) -> dict[str, tuple[Path, int | None]]:
    """Band name -> (file, resolution in its name); the finest of several when picking."""
    found: dict[str, tuple[Path, int | None]] = {}
    for p in paths:
        hit = band_of_file(p.name)
        if hit is None:
            raise DataError(f"{p}: cannot tell which band this file holds; name it by the Sentinel-2 convention (*_B02.tif, *_B8A.jp2)")
        band, res = hit
        if band in found:
            other, other_res = found[band]
            if pick_finest and res is not None and other_res is not None and res != other_res:
                if res < other_res:
                    found[band] = (p, res)
                continue
            raise DataError(f"{p}: {band} is held by {other} too; pass one file per band")
        found[band] = (p, res)
    return found


def _assemble(
    source: str,
    layout: str,
    found: dict,
    bands: tuple[str, ...],
    adds: dict[str, tuple[float, float]],
    offset: float | None,
    mtd: Path | None = None,
) -> InputBands:
    _require(source, found, bands)
    where = f"{mtd.name} ({'BOA' if 'L2A' in mtd.name else 'RADIO'}_ADD_OFFSET)" if mtd else ""
    radiometry, adds = _radiometry(bands, offset, adds, where, f"DN as stored{' (' + mtd.name + ' states no offset)' if mtd else ''}")
    files = [BandFile(b, str(found[b][0]), 1, *adds.get(b, (1.0, 0.0)), nodata=S2_NODATA) for b in bands]
    return InputBands(source, layout, files, radiometry, sorted(set(found) - set(bands)))


def stac_item(path: Path, bands: tuple[str, ...], optical_scale: float, offset: float | None) -> InputBands:
    """Assets of a STAC item, read with pystac and its eo and raster extensions, by band: the
    ``eo:bands`` name (or STAC 1.1 ``bands``), else the asset key (``B02``, ``blue``, ``nir08``);
    COGs preferred over JP2 twins. hrefs relative to the item or absolute (local, ``file://``,
    ``https://``, ``s3://``). An item pystac cannot read, or whose bands, scales, offsets or
    nodata are not what the extensions define, is one DataError naming the file and the key."""
    try:
        found, raster = stac_assets(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DataError(
            f"{path}: not a STAC item we can read ({type(exc).__name__}: {exc}); pass an item JSON with assets, or a raster"
        ) from None
    _require(path, found, bands)
    stated = {b: _gdal_scale(raster[b][0], raster[b][1], optical_scale) for b in bands if raster[b][:2] != (None, None)}
    radiometry, per_band = _radiometry(
        bands, offset, stated, "STAC raster:bands scale/offset", "DN as stored (the item states no scale/offset)"
    )
    files = [BandFile(b, found[b], 1, *per_band.get(b, (1.0, 0.0)), nodata=raster[b][2]) for b in bands]
    return InputBands(str(path), "STAC item", files, radiometry, sorted(set(found) - set(bands)))


# --- SAR ---------------------------------------------------------------------------------------


def resolve_sar(arg: str | Path, pols: tuple[str, ...] = ("VV", "VH")) -> InputBands:
    """A 2-band SAR raster (descriptions VV/VH when present, else that order) or ``VV,VH``
    files (told apart by ``vv``/``vh`` in their names, else in that order); dB or linear
    power, told from the values (``sar_units``)."""
    text = str(arg)
    if "," in text:
        paths = [p.strip() for p in text.split(",") if p.strip()]
        if len(paths) != len(pols):
            raise DataError(f"{text}: {len(paths)} SAR files; pass {len(pols)} ({','.join(pols)}) or one {len(pols)}-band raster")
        named = {(_POL.search(Path(p).name)[1].upper() if _POL.search(Path(p).name) else None): p for p in paths}
        if set(named) != set(pols):
            named = dict(zip(pols, paths))
        files = []
        for pol in pols:
            with _open(named[pol], "SAR") as src:
                if src.count != 1:
                    raise DataError(
                        f"{named[pol]}: {src.count} bands in a per-polarisation SAR file; pass single-band {','.join(pols)} files"
                    )
                files.append(BandFile(pol, named[pol], 1, units=sar_units(src)))
        return InputBands(text, "SAR files", files, _units_text(files))
    with _open(text, "SAR") as src:
        if src.count != len(pols):
            raise DataError(
                f"{text}: SAR has {src.count} bands, the model expects {len(pols)} ({', '.join(pols)}); pass a {len(pols)}-band raster or "
                f"{','.join(pols)} files"
            )
        names = [(d or "").strip().upper() for d in src.descriptions]
        order = [names.index(p) + 1 for p in pols] if set(pols) <= set(names) else list(range(1, len(pols) + 1))
        units = sar_units(src)
    files = [BandFile(p, text, i, units=units) for p, i in zip(pols, order)]
    return InputBands(text, "SAR raster", files, _units_text(files))


def _units_text(files: list[BandFile]) -> str:
    return "; ".join(f"{f.band} {'linear power, converted to dB' if f.units == 'linear' else 'dB'}" for f in files)
