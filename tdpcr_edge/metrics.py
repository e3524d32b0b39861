"""Image-quality and segmentation metrics (docs/datasets.md#metrics).

Units: PSNR in dB on [0, 1] data (data range 1), SSIM with an 11 x 11 Gaussian window of
sigma 1.5 averaged over bands, SAM in degrees, MAE on [0, 1] data, mIoU and OA in percent.

Aggregation: the data-set figures are means of per-image figures, as the cloud-removal
literature reports them. Figures by cloud-thickness bin pool the pixels of a bin over all
images (a bin is a set of pixels, not of images), so PSNR there comes from the pooled MSE.
mIoU averages IoU over the classes present (in the truth or the prediction), pixels
labelled 255 ignored, as mmsegmentation does.

Plain numpy: the runtime install scores accuracy (an export's drift, a scene against its
reference) without torch. The figures are torchmetrics' (tests/test_metrics.py compares).
"""

from __future__ import annotations

import math

import numpy as np

from .data.synthetic import THICKNESS_BINS

IGNORE_INDEX = 255
SSIM_K1, SSIM_K2 = 0.01, 0.03


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR of all of ``pred`` against ``target`` (any shape, data range 1)."""
    err = np.asarray(pred, np.float32) - np.asarray(target, np.float32)
    return _psnr_from_mse(float(np.mean(np.square(err, dtype=np.float64))))


def _gaussian(sigma: float) -> np.ndarray:
    # torchmetrics sizes the window from sigma, not from kernel_size.
    size = int(3.5 * sigma + 0.5) * 2 + 1
    dist = np.arange((1 - size) / 2, (1 + size) / 2, 1.0)
    g = np.exp(-((dist / sigma) ** 2) / 2)
    return g / g.sum()


def _filter(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter of N x H' x W' (padded by len(g) // 2 on each side), valid part only."""
    k = len(g)
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = sum(g[j] * x[:, j : j + h, :] for j in range(k))
    return sum(g[j] * rows[:, :, j : j + w] for j in range(k))


def ssim_map(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SSIM of N x C x H x W images: the standard value per image (N) and the per-pixel
    map (N x H x W, averaged over bands). Images smaller than the 11-pixel window get the
    largest odd window that fits, sigma scaled alike, rather than no SSIM at all.

    The value per image averages the window positions that lie wholly inside the image, as
    Wang et al.'s reference code and tf.image.ssim (DSen2-CR) do; torchmetrics' own scalar
    also counts the reflect-padded border, which reads about 2e-4 lower on noisy images.
    The map is torchmetrics' full image: the border from reflect-padded inputs."""
    pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    n, c, h, w = pred.shape
    k = min(11, h, w)
    k -= 1 - k % 2
    g = _gaussian(1.5 * k / 11)
    pad = len(g) // 2
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    inner = np.zeros(n)
    full = np.zeros((n, h, w))
    # Band by band, in float64: a strip of a wide scene stays small, and the variances
    # (E[x^2] - E[x]^2) keep their digits.
    for band in range(c):
        p, t = (np.pad(a[:, band].astype(np.float64), ((0, 0), (pad, pad), (pad, pad)), mode="reflect") for a in (pred, target))
        mu_p, mu_t, pp, tt, pt = (_filter(z, g) for z in (p, t, p * p, t * t, p * t))
        mu_pp, mu_tt, mu_pt = mu_p * mu_p, mu_t * mu_t, mu_p * mu_t
        var_p, var_t = np.maximum(pp - mu_pp, 0.0), np.maximum(tt - mu_tt, 0.0)
        s = ((2 * mu_pt + c1) * (2 * (pt - mu_pt) + c2)) / ((mu_pp + mu_tt + c1) * (var_p + var_t + c2))
        full += s
        inner += s[:, pad : h - pad, pad : w - pad].mean(axis=(1, 2))
    return inner / c, full / c


def sam_map(pred: np.ndarray, target: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Spectral angle per pixel in degrees (N x H x W).

    In float32, as torch computed it and torchmetrics does: arccos is ill-conditioned near
    a zero angle, so float64 would shift the small angles of good reconstructions by more
    than the rounding of the other figures moves them."""
    pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    dot = (pred * target).sum(axis=1)
    norm = np.sqrt((pred * pred).sum(axis=1)) * np.sqrt((target * target).sum(axis=1))
    cos = np.clip(dot / (norm + np.float32(eps)), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


class ReconstructionScores:
    """Accumulates PSNR, SSIM, SAM, MAE over images, overall and by thickness bin."""

    def __init__(self, bins: dict[str, tuple[float, float]] = THICKNESS_BINS):
        self.bins = bins
        self.images: list[dict[str, float]] = []
        self.pooled = {b: {"se": 0.0, "ae": 0.0, "ssim": 0.0, "sam": 0.0, "px": 0, "bands": 0} for b in bins}

    def update(self, pred: np.ndarray, target: np.ndarray, cloud: np.ndarray | None = None, valid: np.ndarray | None = None) -> None:
        """pred, target: N x C x H x W in [0, 1]; cloud, valid: N x H x W."""
        pred, target = np.asarray(pred, np.float32), np.asarray(target, np.float32)
        valid = np.ones((pred.shape[0], *pred.shape[2:]), bool) if valid is None else np.asarray(valid, bool)
        ssim_values, smap = ssim_map(pred, target)
        sam = sam_map(pred, target)
        err = (pred - target).astype(np.float64)
        for i in range(pred.shape[0]):
            v = valid[i]
            if not v.any():
                continue
            e = err[i][:, v]
            self.images.append(
                {
                    "psnr": _psnr_from_mse(float(np.mean(e**2))),
                    # With nodata inside, the standard border-cropped SSIM would mix in
                    # masked pixels, so the map is averaged over valid pixels instead.
                    "ssim": float(ssim_values[i]) if bool(v.all()) else float(smap[i][v].mean()),
                    "sam": float(sam[i][v].mean(dtype=np.float64)),
                    "mae": float(np.abs(e).mean()),
                }
            )
            if cloud is None:
                continue
            c = np.asarray(cloud[i])
            for name, (lo, hi) in self.bins.items():
                m = v & (c >= lo) & (c < hi)
                n = int(m.sum())
                if n == 0:
                    continue
                eb = err[i][:, m]
                acc = self.pooled[name]
                acc["se"] += float((eb**2).sum())
                acc["ae"] += float(np.abs(eb).sum())
                acc["ssim"] += float(smap[i][m].sum())
                acc["sam"] += float(sam[i][m].sum(dtype=np.float64))
                acc["px"] += n
                acc["bands"] += n * eb.shape[0]

    def merge(self, other: "ReconstructionScores") -> None:
        self.images += other.images
        for name, acc in other.pooled.items():
            for k, v in acc.items():
                self.pooled[name][k] += v

    def compute(self) -> dict[str, float]:
        if not self.images:
            return {}
        return {k: float(np.mean([im[k] for im in self.images])) for k in ("psnr", "ssim", "sam", "mae")}

    def compute_bins(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, acc in self.pooled.items():
            if acc["px"] == 0:
                continue
            out[name] = {
                "psnr": _psnr_from_mse(acc["se"] / acc["bands"]),
                "ssim": acc["ssim"] / acc["px"],
                "sam": acc["sam"] / acc["px"],
                "mae": acc["ae"] / acc["bands"],
                "pixels": acc["px"],
            }
        return out


class ConfusionMatrix:
    """K x K pixel counts, rows the truth and columns the prediction (torchmetrics'
    MulticlassConfusionMatrix layout); truth ``ignore_index`` is not counted."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """pred, target: class ids of any (equal) shape."""
        k = self.num_classes
        pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
        keep = target != self.ignore_index
        pred, target = pred[keep].astype(np.int64), target[keep].astype(np.int64)
        # An id outside the classes would land in another cell (or break the reshape).
        for what, ids in (("prediction", pred), ("labels", target)):
            if ids.size and (ids.min() < 0 or ids.max() >= k):
                raise ValueError(f"{what} hold class ids outside 0..{k - 1} (and {self.ignore_index} for no label)")
        self.matrix += np.bincount(target * k + pred, minlength=k * k).reshape(k, k)

    def merge_state(self, other: "ConfusionMatrix") -> None:
        self.matrix += other.matrix

    def compute(self) -> np.ndarray:
        return self.matrix.copy()


class SegmentationScores:
    """Confusion-matrix based mIoU and OA, overall and by thickness bin."""

    def __init__(self, num_classes: int, bins: dict[str, tuple[float, float]] = THICKNESS_BINS):
        self.num_classes = num_classes
        self.bins = bins
        self.overall = ConfusionMatrix(num_classes)
        self.by_bin = {b: ConfusionMatrix(num_classes) for b in bins}
        # A data set without labels (or cloud maps) scores no classes (or bins): no figures
        # rather than empty ones.
        self.updated = self.binned = False

    def update(self, pred: np.ndarray, labels: np.ndarray, cloud: np.ndarray | None = None, valid: np.ndarray | None = None) -> None:
        """pred: N x H x W class ids (or N x K x H x W logits); labels: N x H x W."""
        pred = np.asarray(pred)
        if pred.ndim == 4:
            pred = pred.argmax(axis=1)
        labels = np.array(labels, dtype=np.int64)
        if valid is not None:
            labels[~np.asarray(valid, bool)] = IGNORE_INDEX
        self.overall.update(pred, labels)
        self.updated = True
        if cloud is None:
            return
        cloud = np.asarray(cloud)
        self.binned = True
        for name, (lo, hi) in self.bins.items():
            self.by_bin[name].update(pred, np.where((cloud >= lo) & (cloud < hi), labels, IGNORE_INDEX))

    @staticmethod
    def _scores(cm) -> dict[str, float]:
        """mIoU, OA and the pixel count of a confusion matrix (an array or nested lists)."""
        cm = np.asarray(cm, dtype=np.float64)
        total = float(cm.sum())
        if total == 0:
            return {}
        inter = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - inter
        present = union > 0
        iou = inter[present] / union[present]
        return {"miou": 100.0 * float(iou.mean()), "oa": 100.0 * float(inter.sum()) / total, "pixels": int(total)}

    def merge(self, other: "SegmentationScores") -> None:
        if not other.updated:
            return
        self.overall.merge_state(other.overall)
        self.updated = True
        if other.binned:
            for name, metric in other.by_bin.items():
                self.by_bin[name].merge_state(metric)
            self.binned = True

    def compute(self) -> dict[str, float]:
        return self._scores(self.overall.compute()) if self.updated else {}

    def per_class_iou(self) -> list[float | None]:
        if not self.updated:
            return []
        cm = self.overall.compute().astype(np.float64)
        inter = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - inter
        return [100.0 * float(i / u) if u > 0 else None for i, u in zip(inter, union)]

    def compute_bins(self) -> dict[str, dict[str, float]]:
        if not self.binned:
            return {}
        return {name: s for name, cm in self.by_bin.items() if (s := self._scores(cm.compute()))}
