"""The bands of one input (``inputs.InputBands``) read as one raster on one grid: the finest
band's, or ``--resolution``'s, or a grid given (the optical's, for a SAR with ``--align``).
Bands on another grid are resampled on the fly through GDAL's WarpedVRT, window by window,
so memory follows the window, never the scene: bilinear for reflectance and backscatter,
nearest for masks. Every file must share the CRS and extent of its siblings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from ..errors import DataError
from .inputs import InputBands, _open


@dataclass(frozen=True)
class Grid:
    crs: object
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> float:
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    def same(self, other: "Grid") -> bool:
        return (
            self.crs == other.crs
            and self.transform.almost_equals(other.transform)
            and (self.width, self.height) == (other.width, other.height)
        )


def grid_of(src) -> Grid:
    return Grid(src.crs, src.transform, src.width, src.height)


class _Group:
    """The bands one file gives: the file (or its warped view), which of its bands, where they
    go; whether GDAL's masks say anything (``read_masks``) and whether the product's no-data
    value must be looked for in the pixels (read unwarped; a warped file's VRT masks it)."""

    def __init__(self, reader, warped: bool, read_masks: bool, value_nodata: bool):
        self.reader, self.warped, self.read_masks, self.value_nodata = reader, warped, read_masks, value_nodata
        self.indexes: list[int] = []
        self.slots: list[int] = []
        self.files: list = []

    @property
    def masked(self) -> bool:
        return self.read_masks or self.value_nodata


class BandStack:
    """Reads ``bands`` as one ``count`` x H x W raster in the model's units (optical DN, SAR
    dB); a plain multi-band raster read whole and as stored keeps rasterio's own read."""

    def __init__(
        self,
        bands: InputBands,
        what: str = "optical",
        grid: Grid | None = None,
        resolution: float | None = None,
        align: bool = True,
        misfit: str = "pass --align to reproject the SAR onto the optical grid",
    ):
        self.bands, self.what, self.misfit = bands, what, misfit
        self.count = len(bands.files)
        self._opened: dict[str, object] = {}
        try:
            for f in bands.files:
                if f.path not in self._opened:
                    self._opened[f.path] = _open(f.path, what)
            grids = {p: grid_of(src) for p, src in self._opened.items()}
            self._check_siblings(grids)
            finest = min(grids.values(), key=lambda g: g.res)
            self.grid = grid or (_regrid(finest, resolution) if resolution else finest)
            self._groups = self._build(grids, align)
        except BaseException:
            self.close()
            raise
        self.crs, self.transform = self.grid.crs, self.grid.transform
        self.width, self.height = self.grid.width, self.grid.height
        self.shape = (self.height, self.width)
        first = self._opened[bands.files[0].path]
        self.dtype = np.dtype(first.dtypes[0])
        self.nodata = first.nodata
        self.block_shapes = first.block_shapes if not self._groups[0].warped else [(256, 256)]
        self.masked = any(g.masked for g in self._groups)
        f0 = bands.files
        self._identity = all(f.scale == 1.0 and f.offset == 0.0 and f.units != "linear" for f in f0)
        self._fast = (
            len(self._groups) == 1
            and not self._groups[0].warped
            and self._identity
            and self._groups[0].indexes == list(range(1, first.count + 1))
            and all(f.nodata is None for f in f0)
        )
        self.read_dtype = self.dtype if self._identity else np.dtype(np.float32)  # what read() returns
        self.profile = {
            "crs": self.crs,
            "transform": self.transform,
            "width": self.width,
            "height": self.height,
            "nodata": self.nodata,
            "count": self.count,
            "dtype": str(self.dtype),
        }

    def _check_siblings(self, grids: dict) -> None:
        """Sentinel-2's bands cover one extent at 10, 20 and 60 m: a file of another CRS or
        extent is another product, or was cut differently."""
        paths = list(grids)
        ref = grids[paths[0]]
        for p in paths[1:]:
            g = grids[p]
            if g.crs != ref.crs:
                raise DataError(f"{p}: CRS {g.crs} differs from {paths[0]} ({ref.crs}); every band file of one scene must share its CRS")
            tol = 0.5 * min(g.res, ref.res)
            if any(abs(a - b) > tol for a, b in zip(g.bounds, ref.bounds)):
                raise DataError(
                    f"{p}: extent {_fmt(g.bounds)} differs from {paths[0]} ({_fmt(ref.bounds)}); "
                    "pass band files of one product (or clip them to one extent)"
                )

    def _build(self, grids: dict, align: bool) -> list[_Group]:
        groups: dict[str, _Group] = {}
        for slot, f in enumerate(self.bands.files):
            if f.path not in groups:
                src = self._opened[f.path]
                warped = not grids[f.path].same(self.grid)
                if warped and not align:
                    raise DataError(
                        f"{f.path}: CRS, transform or size ({src.crs}, {src.width}x{src.height}) differs from the optical grid "
                        f"({self.grid.crs}, {self.grid.width}x{self.grid.height}); {self.misfit}"
                    )
                nodata = src.nodata if src.nodata is not None else f.nodata
                if warped:
                    # Outside the file's footprint is nodata (NaN for float data), masked like any gap.
                    fill = float("nan") if np.issubdtype(np.dtype(src.dtypes[0]), np.floating) and nodata is None else nodata
                    reader = WarpedVRT(
                        src,
                        crs=self.grid.crs,
                        transform=self.grid.transform,
                        width=self.grid.width,
                        height=self.grid.height,
                        resampling=Resampling.bilinear,
                        src_nodata=nodata,
                        nodata=fill,
                    )
                else:
                    reader = src
                # Rasters without nodata, mask or alpha have nothing to mask: skipping GDAL's
                # all-255 masks saves a band-sized read and reduction per tile. A warped file is
                # always masked: pixels outside its footprint are not valid data.
                read_masks = warped or any(fl != [MaskFlags.all_valid] for fl in src.mask_flag_enums)
                groups[f.path] = _Group(reader, warped, read_masks, value_nodata=not warped and f.nodata is not None)
            g = groups[f.path]
            g.indexes.append(f.index)
            g.slots.append(slot)
            g.files.append(f)
        return list(groups.values())

    def read(
        self, window: Window | None = None, out_shape: tuple[int, int, int] | None = None, resampling: Resampling = Resampling.nearest
    ) -> np.ndarray:
        """``count`` x h x w in the model's units; as stored (and its dtype) when no scale,
        offset or conversion applies, else float32."""
        return self._read(window, out_shape, resampling, with_valid=False)[0]

    def read_masks(
        self, window: Window | None = None, out_shape: tuple[int, int, int] | None = None, resampling: Resampling = Resampling.nearest
    ) -> np.ndarray:
        """h x w of 255 where every band holds data, else 0 (masks and no-data values)."""
        if self._fast:
            m = self._guard(
                lambda: self._groups[0].reader.read_masks(
                    window=window, out_shape=out_shape and (self.count, *out_shape[-2:]), resampling=resampling
                )
            )
            return np.where((m != 0).all(0), 255, 0).astype(np.uint8)
        valid = self._read(window, out_shape, resampling, with_valid=True)[1]
        return np.where(valid, 255, 0).astype(np.uint8)

    def read_valid(self, window: Window, out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixels and where every band holds data, from one read per file; into ``out``
        (``count`` x h x w of ``read_dtype``, h x w bool; views of a larger buffer will do)
        when given."""
        return self._read(window, None, Resampling.nearest, with_valid=True, into=out)

    def _read(self, window, out_shape, resampling, with_valid: bool, into=None) -> tuple[np.ndarray, np.ndarray | None]:
        h, w = self._shape(window, out_shape)
        valid = None
        if with_valid:
            valid = np.ones((h, w), bool) if into is None else into[1]
            valid[...] = True
        if self._fast:
            g = self._groups[0]
            data = self._guard(
                lambda: g.reader.read(
                    window=window,
                    out_shape=out_shape and (self.count, h, w),
                    resampling=resampling,
                    **({"out": into[0]} if into is not None else {}),
                )
            )
            if with_valid and g.masked:
                valid &= (self._guard(lambda: g.reader.read_masks(window=window, out_shape=(self.count, h, w))) != 0).all(0)
            return data, valid
        out = np.empty((self.count, h, w), self.read_dtype) if into is None else into[0]
        for g in self._groups:
            data = self._guard(lambda: g.reader.read(g.indexes, window=window, out_shape=(len(g.indexes), h, w), resampling=resampling))
            if with_valid and g.read_masks:
                valid &= (self._guard(lambda: g.reader.read_masks(g.indexes, window=window, out_shape=(len(g.indexes), h, w))) != 0).all(0)
            if with_valid and g.value_nodata:
                for k, f in enumerate(g.files):
                    valid &= data[k] != f.nodata
            for k, (slot, f) in enumerate(zip(g.slots, g.files)):
                out[slot] = data[k] if self._identity else _to_units(data[k], f)
        return out, valid

    def _shape(self, window, out_shape) -> tuple[int, int]:
        if out_shape is not None:
            return int(out_shape[-2]), int(out_shape[-1])
        if window is None:
            return self.height, self.width
        return int(window.height), int(window.width)

    def _guard(self, read):
        try:
            return read()
        except RasterioError as exc:
            first = exc
            while first.__context__ is not None:  # GDAL's own message is the first in the chain
                first = first.__context__
            reason = str(first).splitlines()[0]
            fix = "the file is truncated or corrupt, re-create it"
            raise DataError(f"{self.bands.source}: {self.what} unreadable ({reason}); {fix}") from exc

    def close(self) -> None:
        for g in getattr(self, "_groups", []):
            if g.warped:
                g.reader.close()
        for src in self._opened.values():
            src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _to_units(band: np.ndarray, f) -> np.ndarray:
    x = band.astype(np.float32)
    if f.scale != 1.0:
        x *= np.float32(f.scale)
    if f.offset != 0.0:
        x += np.float32(f.offset)
    if f.units == "linear":
        # Linear power to dB; zero and negative power (no return, or the fill) go to the floor.
        np.maximum(x, np.float32(1e-10), out=x)
        np.log10(x, out=x)
        x *= np.float32(10.0)
    return x


def _regrid(g: Grid, res: float) -> Grid:
    """The grid over ``g``'s extent at ``res`` metres."""
    left, bottom, right, top = g.bounds
    width, height = max(1, round((right - left) / res)), max(1, round((top - bottom) / res))
    return Grid(g.crs, Affine(res, 0.0, left, 0.0, -res, top), width, height)


def _fmt(b) -> str:
    return "(" + ", ".join(f"{v:.1f}" for v in b) + ")"
