"""Image-quality and segmentation metrics (docs/datasets.md#metrics).

Units: PSNR in dB on [0, 1] data (data range 1), SSIM with an 11 x 11 Gaussian window of
sigma 1.5 averaged over bands, SAM in degrees, MAE on [0, 1] data, mIoU and OA in percent.

Aggregation: the data-set figures are means of per-image figures, as the cloud-removal
literature reports them. Figures by cloud-thickness bin pool the pixels of a bin over all
images (a bin is a set of pixels, not of images), so PSNR there comes from the pooled MSE.
mIoU averages IoU over the classes present (in the truth or the prediction), pixels
labelled 255 ignored, as mmsegmentation does.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .data.synthetic import THICKNESS_BINS

IGNORE_INDEX = 255


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    return float(peak_signal_noise_ratio(pred, target, data_range=1.0))


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM of N x C x H x W images: the standard value per image (N) and the per-pixel
    map (N x H x W, averaged over bands). Images smaller than the 11-pixel window get the
    largest odd window that fits, sigma scaled alike, rather than no SSIM at all.

    The value per image averages the window positions that lie wholly inside the image, as
    Wang et al.'s reference code and tf.image.ssim (DSen2-CR) do; torchmetrics' own scalar
    also counts the reflect-padded border, which reads about 2e-4 lower on noisy images."""
    k = min(11, min(pred.shape[-2:]))
    k -= 1 - k % 2
    _, full = structural_similarity_index_measure(
        pred,
        target,
        gaussian_kernel=True,
        sigma=1.5 * k / 11,
        kernel_size=k,
        data_range=1.0,
        reduction="none",
        return_full_image=True,
    )
    pad = (k - 1) // 2
    inner = full[..., pad : full.shape[-2] - pad, pad : full.shape[-1] - pad]
    return inner.mean(dim=(1, 2, 3)), full.mean(dim=1)


def sam_map(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Spectral angle per pixel in degrees (N x H x W)."""
    dot = (pred * target).sum(dim=1)
    norm = pred.norm(dim=1) * target.norm(dim=1)
    cos = torch.clamp(dot / (norm + eps), -1.0, 1.0)
    return torch.rad2deg(torch.acos(cos))


def _psnr_from_mse(mse: float) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


class ReconstructionScores:
    """Accumulates PSNR, SSIM, SAM, MAE over images, overall and by thickness bin."""

    def __init__(self, bins: dict[str, tuple[float, float]] = THICKNESS_BINS):
        self.bins = bins
        self.images: list[dict[str, float]] = []
        self.pooled = {b: {"se": 0.0, "ae": 0.0, "ssim": 0.0, "sam": 0.0, "px": 0, "bands": 0} for b in bins}

    @torch.no_grad()
    def update(
        self, pred: torch.Tensor, target: torch.Tensor, cloud: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> None:
        """pred, target: N x C x H x W in [0, 1]; cloud, valid: N x H x W."""
        pred, target = pred.float(), target.float()
        if valid is None:
            valid = torch.ones(pred.shape[0], *pred.shape[2:], dtype=torch.bool)
        ssim_values, smap = ssim_map(pred, target)
        sam = sam_map(pred, target)
        err = pred - target
        for i in range(pred.shape[0]):
            v = valid[i]
            if not v.any():
                continue
            e = err[i][:, v]
            self.images.append(
                {
                    "psnr": _psnr_from_mse(float((e**2).mean())),
                    # With nodata inside, the standard border-cropped SSIM would mix in
                    # masked pixels, so the map is averaged over valid pixels instead.
                    "ssim": float(ssim_values[i]) if bool(v.all()) else float(smap[i][v].mean()),
                    "sam": float(sam[i][v].mean()),
                    "mae": float(e.abs().mean()),
                }
            )
            if cloud is None:
                continue
            for name, (lo, hi) in self.bins.items():
                m = v & (cloud[i] >= lo) & (cloud[i] < hi)
                n = int(m.sum())
                if n == 0:
                    continue
                eb = err[i][:, m]
                acc = self.pooled[name]
                acc["se"] += float((eb**2).sum())
                acc["ae"] += float(eb.abs().sum())
                acc["ssim"] += float(smap[i][m].sum())
                acc["sam"] += float(sam[i][m].sum())
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


class SegmentationScores:
    """Confusion-matrix based mIoU and OA, overall and by thickness bin."""

    def __init__(self, num_classes: int, bins: dict[str, tuple[float, float]] = THICKNESS_BINS):
        self.num_classes = num_classes
        self.bins = bins
        # No syncing on compute: inside a training process group every rank scores its own
        # shard, and the shards are merged explicitly (Evaluation.merge).
        self.overall = MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX, sync_on_compute=False)
        self.by_bin = {b: MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX, sync_on_compute=False) for b in bins}
        # A data set without labels (or cloud maps) scores no classes (or bins), and asks
        # torchmetrics for nothing it was never given.
        self.updated = self.binned = False

    @torch.no_grad()
    def update(
        self, pred: torch.Tensor, labels: torch.Tensor, cloud: torch.Tensor | None = None, valid: torch.Tensor | None = None
    ) -> None:
        """pred: N x H x W class ids (or N x K x H x W logits); labels: N x H x W."""
        if pred.dim() == 4:
            pred = pred.argmax(dim=1)
        labels = labels.long().clone()
        if valid is not None:
            labels[~valid] = IGNORE_INDEX
        self.overall.update(pred.flatten(), labels.flatten())
        self.updated = True
        if cloud is None:
            return
        self.binned = True
        for name, (lo, hi) in self.bins.items():
            masked = torch.where((cloud >= lo) & (cloud < hi), labels, torch.full_like(labels, IGNORE_INDEX))
            self.by_bin[name].update(pred.flatten(), masked.flatten())

    @staticmethod
    def _scores(cm: torch.Tensor) -> dict[str, float]:
        cm = cm.double()
        total = float(cm.sum())
        if total == 0:
            return {}
        inter = cm.diag()
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
        cm = self.overall.compute().double()
        inter = cm.diag()
        union = cm.sum(0) + cm.sum(1) - inter
        return [100.0 * float(i / u) if u > 0 else None for i, u in zip(inter, union)]

    def compute_bins(self) -> dict[str, dict[str, float]]:
        if not self.binned:
            return {}
        return {name: s for name, cm in self.by_bin.items() if (s := self._scores(cm.compute()))}
