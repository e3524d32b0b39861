import math

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
