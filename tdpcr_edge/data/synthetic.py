"""A procedural SAR-optical world (docs/datasets.md#the-synthetic-world), deterministic from (seed, index).

Each sample is a small georeferenced scene: a land-cover map made of smooth random
regions, Sentinel-2-like reflectance per class with texture, Sentinel-1-like backscatter
per class with gamma speckle (independent of clouds, as real SAR is), and fractal clouds
with a thickness map (haze to opaque) that brighten the optical signal towards cloud
white and cast shadows. Raw values follow the real products: optical as uint16 digital
numbers (reflectance x 10000), SAR as float32 dB, so the synthetic and GeoTIFF paths go
through the same normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bands import PRESETS, S2_BANDS

CLASS_NAMES = ("water", "tree cover", "cropland", "built-up", "bare soil", "grassland")
# ESA WorldCover legend colours, so quick looks read like a familiar land-cover map.
CLASS_COLORS = ((0, 100, 200), (0, 100, 0), (240, 150, 255), (250, 0, 0), (180, 180, 180), (255, 255, 76))

# Top-of-atmosphere reflectance per class over the 13 Sentinel-2 bands
# (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12).
SPECTRA = np.array(
    [
        [0.090, 0.070, 0.055, 0.035, 0.030, 0.025, 0.022, 0.018, 0.016, 0.010, 0.002, 0.012, 0.008],  # water
        [0.110, 0.085, 0.075, 0.045, 0.100, 0.240, 0.290, 0.310, 0.320, 0.110, 0.004, 0.160, 0.070],  # trees
        [0.120, 0.095, 0.100, 0.070, 0.140, 0.300, 0.380, 0.400, 0.410, 0.130, 0.005, 0.240, 0.120],  # crops
        [0.160, 0.150, 0.150, 0.160, 0.180, 0.200, 0.210, 0.220, 0.225, 0.080, 0.006, 0.250, 0.220],  # built-up
        [0.150, 0.140, 0.170, 0.210, 0.240, 0.270, 0.290, 0.300, 0.310, 0.110, 0.006, 0.380, 0.320],  # bare
        [0.115, 0.090, 0.095, 0.080, 0.130, 0.220, 0.260, 0.280, 0.290, 0.100, 0.004, 0.260, 0.150],  # grass
    ],
    dtype=np.float32,
)
# Texture amplitude and correlation length (pixels) per class.
TEXTURE = ((0.04, 12.0), (0.14, 2.0), (0.10, 6.0), (0.22, 1.5), (0.08, 8.0), (0.08, 4.0))
# Mean backscatter (dB), VV and VH, per class.
SAR_DB = np.array([[-21.0, -27.0], [-7.5, -13.0], [-10.0, -16.5], [-3.0, -9.5], [-13.0, -20.5], [-11.5, -18.0]], np.float32)
# Cloud top reflectance per band: bright and flat in the visible, darker in the water-vapour
# band (B09) and bright in cirrus (B10).
CLOUD_SPECTRUM = np.array([0.80, 0.79, 0.78, 0.77, 0.76, 0.75, 0.74, 0.73, 0.72, 0.42, 0.35, 0.58, 0.46], np.float32)

# Thickness bins used by every evaluation (upper bounds, exclusive): clear < 0.05 <= thin < 0.5 <= thick.
THICKNESS_BINS = {"clear": (0.0, 0.05), "thin": (0.05, 0.5), "thick": (0.5, 1.0 + 1e-6)}

PIXEL_SIZE_M = 10.0
CRS = "EPSG:32632"  # UTM zone 32N


@dataclass
class Scene:
    """One synthetic scene in raw units. Arrays are band-first."""

    optical_cloudy: np.ndarray  # uint16, 13 x H x W, reflectance x 10000
    optical_clear: np.ndarray  # uint16, 13 x H x W
    sar: np.ndarray  # float32, 2 x H x W, dB (VV, VH)
    labels: np.ndarray  # uint8, H x W
    cloud: np.ndarray  # float32, H x W, thickness in [0, 1]
    origin: tuple[float, float]  # upper-left corner, metres in CRS


def _smooth_field(rng: np.random.Generator, h: int, w: int, length: float) -> np.ndarray:
    """Zero-mean unit-variance Gaussian random field with correlation length ``length`` px."""
    noise = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2.0 * (np.pi * length) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=(h, w))
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _fractal_field(rng: np.random.Generator, h: int, w: int, beta: float = 3.0) -> np.ndarray:
    """1/f^beta noise normalised to [0, 1]: the usual model of cloud texture."""
    noise = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    field = np.fft.irfft2(np.fft.rfft2(noise) / f ** (beta / 2.0), s=(h, w))
    lo, hi = field.min(), field.max()
    return ((field - lo) / (hi - lo + 1e-12)).astype(np.float32)


def make_scene(
    seed: int, index: int, size: int | tuple[int, int] = 128, num_classes: int = 6, stream: int = 0, bands: tuple[str, ...] | None = None
) -> Scene:
    """Scene ``index`` of the world ``seed``. ``stream`` separates independent sample
    streams (training, validation) of the same seed. ``bands`` (Sentinel-2 names) picks the
    optical bands; each is the world's signature at that band's centre wavelength. The world
    is drawn over all 13 and then selected, so a Level-2A or 4-band scene is the 13-band
    scene without the other bands, pixel for pixel."""
    if num_classes < 2 or num_classes > len(CLASS_NAMES):
        from ..errors import ConfigError

        raise ConfigError(f"num_classes must be in 2..{len(CLASS_NAMES)}")
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, stream]))

    # Land cover: the arg-max of one smooth field per class gives contiguous regions.
    region_len = rng.uniform(6.0, 14.0)
    fields = np.stack([_smooth_field(rng, h, w, region_len) for _ in range(num_classes)])
    labels = np.argmax(fields, axis=0).astype(np.uint8)

    # Clear optical: class spectrum x (1 + texture), plus a gentle scene-wide illumination.
    reflect = SPECTRA[labels].transpose(2, 0, 1).copy()  # 13 x H x W
    for c in range(num_classes):
        amp, length = TEXTURE[c]
        tex = 1.0 + amp * _smooth_field(rng, h, w, length)
        reflect *= np.where(labels == c, tex, 1.0)[None]
    reflect *= (1.0 + 0.05 * _smooth_field(rng, h, w, 40.0))[None]
    reflect += rng.normal(0.0, 0.003, reflect.shape).astype(np.float32)
    clear = np.clip(reflect, 0.0, 1.0)

    # SAR: class backscatter with its own texture, then multiplicative gamma speckle
    # (4 looks) in linear power. Clouds do not touch it.
    db = SAR_DB[labels].transpose(2, 0, 1).copy() + 1.0 * _smooth_field(rng, h, w, 3.0)[None]
    looks = 4.0
    speckle = rng.gamma(looks, 1.0 / looks, size=db.shape).astype(np.float32)
    sar = (10.0 * np.log10(np.maximum(10.0 ** (db / 10.0) * speckle, 1e-6))).astype(np.float32)

    # Clouds: thresholded fractal noise; coverage varies from clear sky to overcast.
    coverage = rng.choice([0.0, rng.uniform(0.1, 0.9)], p=[0.1, 0.9])
    base = _fractal_field(rng, h, w, beta=rng.uniform(2.6, 3.4))
    if coverage > 0:
        thr = np.quantile(base, 1.0 - coverage)
        softness = rng.uniform(0.08, 0.25)
        cloud = np.clip((base - thr) / softness, 0.0, 1.0).astype(np.float32)
    else:
        cloud = np.zeros((h, w), np.float32)
    # Shadows: the cloud map shifted along the sun direction, darkening the ground only.
    dy, dx = (rng.integers(-max(2, h // 12), max(3, h // 12 + 1), size=2)).tolist()
    shadow = np.roll(cloud, (dy, dx), axis=(0, 1)) * (1.0 - cloud)
    cloud_tex = 1.0 + 0.06 * _smooth_field(rng, h, w, 4.0)
    cloudy = clear * (1.0 - 0.55 * shadow)[None]
    cloudy = cloudy * (1.0 - cloud)[None] + (CLOUD_SPECTRUM[:, None, None] * cloud_tex[None]) * cloud[None]
    cloudy += rng.normal(0.0, 0.003, cloudy.shape).astype(np.float32)

    to_dn = lambda x: np.round(np.clip(x, 0.0, 1.0) * 10000.0).astype(np.uint16)  # noqa: E731
    origin = (300000.0 + float(rng.integers(0, 5000)) * 100.0, 5300000.0 - float(rng.integers(0, 5000)) * 100.0)
    if bands is not None and tuple(bands) != PRESETS["s2-l1c"]:
        pick = [_band_index(b) for b in bands]
        cloudy, clear = cloudy[pick], clear[pick]
    return Scene(to_dn(cloudy), to_dn(clear), sar, labels, cloud, origin)


def _band_index(band: str) -> int:
    if band not in S2_BANDS:
        from ..errors import ConfigError

        raise ConfigError(f"the synthetic world has Sentinel-2 bands {', '.join(S2_BANDS)}, not {band!r}")
    return list(S2_BANDS).index(band)


def thickness_bin_masks(cloud: np.ndarray) -> dict[str, np.ndarray]:
    return {name: (cloud >= lo) & (cloud < hi) for name, (lo, hi) in THICKNESS_BINS.items()}
