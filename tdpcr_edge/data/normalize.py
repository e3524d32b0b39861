"""Value conventions between raw rasters and model tensors (docs/datasets.md#scenes-and-value-conventions).

The normalisation travels with every checkpoint, so a model is never fed data scaled
differently from what it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Normalization:
    """Optical: digital numbers / ``optical_scale``, clipped to [0, 1].
    SAR: dB clipped per band to ``[sar_min_db[i], sar_max_db[i]]`` and scaled to [0, 1]."""

    optical_scale: float = 10000.0
    sar_min_db: tuple[float, ...] = (-25.0, -25.0)
    sar_max_db: tuple[float, ...] = (0.0, 0.0)
    optical_bands: tuple[str, ...] = field(
        default=("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
    )
    sar_bands: tuple[str, ...] = ("VV", "VH")

    def optical_to_model(self, dn: np.ndarray) -> np.ndarray:
        x = dn.astype(np.float32)  # a copy, so the rest runs in place (tiles stream through here)
        x /= np.float32(self.optical_scale)
        return np.clip(x, 0.0, 1.0, out=x)

    def optical_from_model(self, x: np.ndarray) -> np.ndarray:
        """Back to the raster's digital numbers (uint16), rounding to nearest."""
        y = np.clip(x, 0.0, 1.0)  # one temporary, then in place: this runs on whole scene strips
        y *= self.optical_scale
        return np.rint(y, out=y).astype(np.uint16)

    def sar_to_model(self, db: np.ndarray) -> np.ndarray:
        lo = np.asarray(self.sar_min_db, np.float32).reshape(-1, *([1] * (db.ndim - 1)))
        hi = np.asarray(self.sar_max_db, np.float32).reshape(-1, *([1] * (db.ndim - 1)))
        if db.ndim == 4:  # N, C, H, W: broadcast over channels, not batch
            lo, hi = lo.reshape(1, -1, 1, 1), hi.reshape(1, -1, 1, 1)
        x = db.astype(np.float32)
        x -= lo
        x /= hi - lo
        return np.clip(x, 0.0, 1.0, out=x)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
