import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import spectral_angle_mapper

from tdpcr_edge.metrics import ReconstructionScores, SegmentationScores, psnr, sam_map


def test_psnr_matches_formula():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 4, 16, 16, generator=g), torch.rand(2, 4, 16, 16, generator=g)
    mse = float(((a - b) ** 2).mean())
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)


def test_sam_matches_torchmetrics_in_degrees():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(2, 13, 8, 8, generator=g) + 0.01, torch.rand(2, 13, 8, 8, generator=g) + 0.01
    ours = float(sam_map(a, b).mean())
    assert ours == pytest.approx(math.degrees(float(spectral_angle_mapper(a, b))), rel=1e-4)


def test_identical_images_score_perfectly():
    a = torch.rand(1, 3, 32, 32)
    s = ReconstructionScores()
    s.update(a, a.clone(), cloud=torch.zeros(1, 32, 32))
    r = s.compute()
    assert r["psnr"] == float("inf") and r["ssim"] == pytest.approx(1.0) and r["sam"] < 0.1 and r["mae"] == 0
    assert set(s.compute_bins()) == {"clear"}


def test_bins_pool_pixels_by_thickness():
    target = torch.zeros(1, 1, 4, 4) + 0.5
    pred = target.clone()
    pred[..., :2, :] += 0.1  # error only in the top half
    cloud = torch.zeros(1, 4, 4)
    cloud[:, :2, :] = 0.9  # top half is thick cloud
    s = ReconstructionScores()
    s.update(pred, target, cloud)
    bins = s.compute_bins()
    assert bins["thick"]["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert bins["clear"]["psnr"] == float("inf")
    assert bins["thick"]["pixels"] == bins["clear"]["pixels"] == 8


def test_invalid_pixels_are_excluded():
    target = torch.full((1, 2, 4, 4), 0.5)
    pred = target.clone()
    pred[..., 0, 0] = 1.0
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False
    s = ReconstructionScores()
    s.update(pred, target, valid=valid)
    assert s.compute()["mae"] == 0


def test_miou_over_present_classes_and_ignore():
    labels = torch.tensor([[[0, 0, 1, 1, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1, 2, 2]]])
    s = SegmentationScores(num_classes=4)
    s.update(pred, labels)
    r = s.compute()
    # class 0: 1/2, class 1: 2/3; class 2 only predicted on ignored pixels; class 3 absent.
    assert r["miou"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert r["oa"] == pytest.approx(75.0)
    assert s.per_class_iou()[3] is None


def test_segmentation_bins():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    pred = torch.tensor([[[0, 0], [1, 1]]])
    cloud = torch.tensor([[[0.0, 0.0], [0.8, 0.8]]])
    s = SegmentationScores(2)
    s.update(pred, labels, cloud)
    bins = s.compute_bins()
    assert bins["clear"]["oa"] == 100.0 and bins["thick"]["oa"] == 0.0 and "thin" not in bins


def _independent_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR, SSIM and SAM written out from their definitions (Wang et al. 2004 for SSIM:
    11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1, mean over the valid
    window positions and the bands), as the cloud-removal evaluation code computes them."""
    from numpy.lib.stride_tricks import sliding_window_view

    mse = np.mean((pred - target) ** 2)
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    ssims = []
    for a, b in zip(pred, target):
        f = lambda z: (sliding_window_view(z, w.shape) * w).sum(axis=(-2, -1))  # noqa: E731  (valid positions only)
        mu_a, mu_b = f(a), f(b)
        va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
        ssims.append(np.mean(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))))
    cos = (pred * target).sum(0) / (np.linalg.norm(pred, axis=0) * np.linalg.norm(target, axis=0))
    return {
        "psnr": 10 * np.log10(1.0 / mse),
        "ssim": float(np.mean(ssims)),
        "sam": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()),
    }


def test_scores_match_an_independent_implementation():
    rng = np.random.default_rng(3)
    for _ in range(3):
        target = rng.random((13, 48, 40))
        pred = np.clip(target + rng.normal(0, rng.uniform(0.01, 0.2), target.shape), 0, 1)
        scores = ReconstructionScores()
        scores.update(torch.from_numpy(pred).float()[None], torch.from_numpy(target).float()[None])
        ours, ref = scores.compute(), _independent_scores(pred, target)
        assert ours["psnr"] == pytest.approx(ref["psnr"], abs=1e-3)
        assert ours["ssim"] == pytest.approx(ref["ssim"], abs=1e-4)
        assert ours["sam"] == pytest.approx(ref["sam"], abs=1e-3)
