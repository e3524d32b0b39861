import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

from tdpcr_edge.metrics import IGNORE_INDEX, ReconstructionScores, SegmentationScores, psnr, sam_map, ssim_map
from tdpcr_edge.scoring import Evaluation


def test_psnr_matches_formula():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 4, 16, 16), np.float32), rng.random((2, 4, 16, 16), np.float32)
    mse = float(((a.astype(np.float64) - b) ** 2).mean())
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)


def test_sam_is_the_spectral_angle_in_degrees():
    rng = np.random.default_rng(2)
    a, b = rng.random((2, 13, 8, 8), np.float32) + 0.01, rng.random((2, 13, 8, 8), np.float32) + 0.01
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    assert float(sam_map(a, b).mean()) == pytest.approx(float(np.degrees(np.arccos(cos)).mean()), rel=1e-4)


def test_identical_images_score_perfectly():
    a = np.random.default_rng(4).random((1, 3, 32, 32), np.float32)
    s = ReconstructionScores()
    s.update(a, a.copy(), cloud=np.zeros((1, 32, 32), np.float32))
    r = s.compute()
    assert r["psnr"] == float("inf") and r["ssim"] == pytest.approx(1.0) and r["sam"] < 0.1 and r["mae"] == 0
    assert set(s.compute_bins()) == {"clear"}


def test_bins_pool_pixels_by_thickness():
    target = np.full((1, 1, 4, 4), 0.5, np.float32)
    pred = target.copy()
    pred[..., :2, :] += 0.1  # error only in the top half
    cloud = np.zeros((1, 4, 4), np.float32)
    cloud[:, :2, :] = 0.9  # top half is thick cloud
    s = ReconstructionScores()
    s.update(pred, target, cloud)
    bins = s.compute_bins()
    assert bins["thick"]["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert bins["clear"]["psnr"] == float("inf")
    assert bins["thick"]["pixels"] == bins["clear"]["pixels"] == 8


def test_invalid_pixels_are_excluded():
    target = np.full((1, 2, 4, 4), 0.5, np.float32)
    pred = target.copy()
    pred[..., 0, 0] = 1.0
    valid = np.ones((1, 4, 4), bool)
    valid[0, 0, 0] = False
    s = ReconstructionScores()
    s.update(pred, target, valid=valid)
    assert s.compute()["mae"] == 0


def test_miou_over_present_classes_and_ignore():
    labels = np.array([[[0, 0, 1, 1, 255, 255]]])
    pred = np.array([[[0, 1, 1, 1, 2, 2]]])
    s = SegmentationScores(num_classes=4)
    s.update(pred, labels)
    r = s.compute()
    # class 0: 1/2, class 1: 2/3; class 2 only predicted on ignored pixels; class 3 absent.
    assert r["miou"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert r["oa"] == pytest.approx(75.0)
    assert s.per_class_iou()[3] is None


def test_segmentation_bins():
    labels = np.zeros((1, 2, 2), np.int64)
    pred = np.array([[[0, 0], [1, 1]]])
    cloud = np.array([[[0.0, 0.0], [0.8, 0.8]]])
    s = SegmentationScores(2)
    s.update(pred, labels, cloud)
    bins = s.compute_bins()
    assert bins["clear"]["oa"] == 100.0 and bins["thick"]["oa"] == 0.0 and "thin" not in bins


def test_class_ids_outside_the_classes_are_refused():
    s = SegmentationScores(3)
    with pytest.raises(ValueError, match="labels hold class ids outside 0..2"):
        s.update(np.zeros((1, 2, 2), np.int64), np.array([[[0, 1], [3, 255]]]))
    with pytest.raises(ValueError, match="prediction"):
        s.update(np.array([[[0, 5]]]), np.array([[[0, 1]]]))


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
        scores.update(pred.astype(np.float32)[None], target.astype(np.float32)[None])
        ours, ref = scores.compute(), _independent_scores(pred, target)
        assert ours["psnr"] == pytest.approx(ref["psnr"], abs=1e-3)
        assert ours["ssim"] == pytest.approx(ref["ssim"], abs=1e-4)
        assert ours["sam"] == pytest.approx(ref["sam"], abs=1e-3)


# Against torchmetrics (the implementation these metrics were computed with before they
# became numpy), on the shipped model's reconstructions of held-out synthetic tiles and on
# the cloudy inputs themselves (the poor reconstructions every report's baseline scores).

REL = 1e-5


@pytest.fixture(scope="module")
def tiles():
    pytest.importorskip("torchmetrics")
    from tdpcr_edge.contract import default_checkpoint_path
    from tdpcr_edge.data.sources import SyntheticSource
    from tdpcr_edge.scoring import model_outputs
    from tdpcr_edge.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(default_checkpoint_path())
    run = model_outputs(ckpt.build())
    scenes = SyntheticSource(5).scenes(4, 64)
    outs = [run(s.optical[None], s.sar[None]) for s in scenes]
    target = np.stack([s.clear for s in scenes])
    return {
        "model": np.concatenate([o["reconstruction"] for o in outs]),
        "input": np.stack([s.optical for s in scenes]),
        "target": target,
        "logits": np.concatenate([o["segmentation"] for o in outs]),
        "labels": np.stack([s.labels for s in scenes]),
        "cloud": np.stack([s.cloud for s in scenes]),
        "num_classes": ckpt.config.num_classes,
    }


def _torch(*arrays, dtype=None):
    import torch

    return [torch.from_numpy(a) if dtype is None else torch.from_numpy(a).to(dtype) for a in arrays]


@pytest.mark.parametrize("side", ["model", "input"])
def test_psnr_and_mae_match_torchmetrics(tiles, side):
    from torchmetrics.functional import mean_absolute_error
    from torchmetrics.functional.image import peak_signal_noise_ratio

    pred, target = tiles[side], tiles["target"]
    p, t = _torch(pred, target)
    s = ReconstructionScores()
    s.update(pred, target)
    per_image = peak_signal_noise_ratio(p, t, data_range=1.0, dim=(1, 2, 3), reduction="none")
    assert s.compute()["psnr"] == pytest.approx(float(per_image.double().mean()), rel=REL)
    assert psnr(pred, target) == pytest.approx(float(peak_signal_noise_ratio(p, t, data_range=1.0)), rel=REL)
    mae = np.mean([float(mean_absolute_error(a, b)) for a, b in zip(p, t)])
    assert s.compute()["mae"] == pytest.approx(mae, rel=REL)


@pytest.mark.parametrize("side", ["model", "input"])
def test_ssim_matches_torchmetrics(tiles, side):
    """torchmetrics' scalar averages its full image, whose border comes from reflect-padded
    inputs; our value per image averages only the window positions wholly inside the image
    (by design: Wang et al.'s code and DSen2-CR's tf.image.ssim do so). So the value is
    checked against torchmetrics' full image cropped by the window's half-width, and our
    map, which is that full image, against the full image and torchmetrics' scalar."""
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, target = tiles[side], tiles["target"]
    ours, smap = ssim_map(pred, target)

    def tm(dtype):
        return structural_similarity_index_measure(
            *_torch(pred, target, dtype=dtype),
            gaussian_kernel=True,
            sigma=1.5,
            kernel_size=11,
            data_range=1.0,
            reduction="none",
            return_full_image=True,
        )

    scalar, full = tm(torch.float32)
    inner = full[..., 5:-5, 5:-5].double().mean(dim=(1, 2, 3)).numpy()
    np.testing.assert_allclose(ours, inner, rtol=REL)
    np.testing.assert_allclose(smap.mean(axis=(1, 2)), scalar.double().numpy(), rtol=REL)
    # Pixel by pixel torchmetrics' float32 loses the digits of SSIM near zero (a variance is
    # a difference of large sums); in float64 it computes what we do.
    _, full64 = tm(torch.float64)
    np.testing.assert_allclose(smap, full64.mean(dim=1).numpy(), rtol=REL, atol=1e-9)
    s = ReconstructionScores()
    s.update(pred, target)
    assert s.compute()["ssim"] == pytest.approx(float(inner.mean()), rel=REL)


def test_ssim_of_small_images_matches_torchmetrics():
    """Under 11 pixels the window shrinks to the largest odd size that fits, sigma alike."""
    pytest.importorskip("torchmetrics")
    from torchmetrics.functional.image import structural_similarity_index_measure

    rng = np.random.default_rng(6)
    for h, w, k in ((9, 20, 9), (8, 30, 7), (3, 5, 3)):
        target = rng.random((2, 4, h, w), np.float32)
        pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1).astype(np.float32)
        ours, smap = ssim_map(pred, target)
        scalar, full = structural_similarity_index_measure(
            *_torch(pred, target), sigma=1.5 * k / 11, kernel_size=k, data_range=1.0, reduction="none", return_full_image=True
        )
        pad = k // 2
        np.testing.assert_allclose(ours, full[..., pad:-pad, pad:-pad].double().mean(dim=(1, 2, 3)).numpy(), rtol=REL)
        np.testing.assert_allclose(smap.mean(axis=(1, 2)), scalar.double().numpy(), rtol=REL)


@pytest.mark.parametrize("side", ["model", "input"])
def test_sam_matches_torchmetrics(tiles, side):
    """torchmetrics returns radians, and divides by the norms without our 1e-8 guard. The
    guard turns a pixel black in every band (the shipped model clamps some to 0) from NaN
    into 90 degrees, and in float32 it nudges every other cosine by up to an ulp, so the
    port itself is compared without it; the scores, with it, leave the black pixels out.
    Per pixel, float32 arccos near a zero angle resolves about 1e-5 degrees, so pixels are
    held to that and the means to the relative bound."""
    from torchmetrics.functional.image import spectral_angle_mapper

    pred, target = tiles[side], tiles["target"]
    p, t = _torch(pred, target)
    ref = np.degrees(spectral_angle_mapper(p, t, reduction="none").double().numpy())
    finite = np.isfinite(ref)
    with np.errstate(invalid="ignore"):
        unguarded = sam_map(pred, target, eps=0.0)
    np.testing.assert_allclose(unguarded, ref, atol=1e-4)
    assert unguarded[finite].mean(dtype=np.float64) == pytest.approx(ref[finite].mean(), rel=REL)
    assert (side == "input" or (~finite).any()) and np.all(sam_map(pred, target)[~finite] == 90.0) and finite.mean() > 0.99
    s = ReconstructionScores()
    s.update(pred, target, valid=finite)
    assert s.compute()["sam"] == pytest.approx(float(np.nanmean(ref, axis=(1, 2)).mean()), rel=REL)


def test_segmentation_matches_torchmetrics(tiles):
    import torch
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassJaccardIndex

    k = tiles["num_classes"]
    logits, labels, cloud = tiles["logits"], tiles["labels"].copy(), tiles["cloud"]
    valid = np.random.default_rng(7).random(labels.shape) > 0.1
    s = SegmentationScores(k)
    s.update(logits, labels, cloud, valid)
    labels[~valid] = IGNORE_INDEX
    pred_t, labels_t = torch.from_numpy(logits.argmax(1)), torch.from_numpy(labels)

    def tm(metric, target=labels_t):
        metric.update(pred_t, target)
        return metric.compute()

    np.testing.assert_array_equal(s.overall.compute(), tm(MulticlassConfusionMatrix(k, ignore_index=IGNORE_INDEX)).numpy())
    r = s.compute()
    assert r["miou"] == pytest.approx(100 * float(tm(MulticlassJaccardIndex(k, average="macro", ignore_index=IGNORE_INDEX))), rel=REL)
    assert r["oa"] == pytest.approx(100 * float(tm(MulticlassAccuracy(k, average="micro", ignore_index=IGNORE_INDEX))), rel=REL)
    per_class = tm(MulticlassJaccardIndex(k, average="none", ignore_index=IGNORE_INDEX)).numpy()
    ours = s.per_class_iou()
    assert all(i is not None for i in ours)  # every class is in these tiles: none falls back to torchmetrics' 0
    np.testing.assert_allclose(ours, 100 * per_class, rtol=REL)
    thick = np.where(cloud >= 0.5, labels, IGNORE_INDEX)  # the thick bin (synthetic.THICKNESS_BINS)
    miou_thick = tm(MulticlassJaccardIndex(k, average="macro", ignore_index=IGNORE_INDEX), torch.from_numpy(thick))
    assert s.compute_bins()["thick"]["miou"] == pytest.approx(100 * float(miou_thick), rel=REL)


def test_evaluations_merge_after_pickling():
    """Training gathers every rank's Evaluation by pickling it; merged shards score as one."""
    rng = np.random.default_rng(8)
    images = []
    for _ in range(4):
        clear = rng.random((3, 24, 24), np.float32)
        images.append(
            dict(
                reconstruction=np.clip(clear + rng.normal(0, 0.05, clear.shape), 0, 1).astype(np.float32),
                classes=rng.integers(0, 3, (24, 24)).astype(np.uint8),
                valid=rng.random((24, 24)) > 0.05,
                optical=rng.random((3, 24, 24), np.float32),
                clear=clear,
                labels=rng.integers(0, 3, (24, 24)),
                cloud=rng.random((24, 24), np.float32),
            )
        )
    whole, parts = Evaluation(3), [Evaluation(3), Evaluation(3)]
    for i, im in enumerate(images):
        whole.add(**im)
        parts[i % 2].add(**im)
    merged = pickle.loads(pickle.dumps(parts[0]))
    merged.merge(pickle.loads(pickle.dumps(parts[1])))
    a, b = whole.result(), merged.result()
    assert a["bins"].keys() == b["bins"].keys() and a["per_class_iou"] == pytest.approx(b["per_class_iou"])
    for name in a["bins"]:
        assert a["bins"][name]["model"] == pytest.approx(b["bins"][name]["model"], rel=1e-12)
    np.testing.assert_array_equal(whole.seg.overall.compute(), merged.seg.overall.compute())


def test_scoring_imports_no_torch():
    """The runtime install scores accuracy without torch: with torch unimportable, the metrics,
    the scoring loop and the stream's scene metrics load and score."""
    code = (
        "import sys, numpy as np\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchmetrics'):\n"
        "            raise ImportError(f'{name} is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import tdpcr_edge.metrics, tdpcr_edge.scoring, tdpcr_edge.stream.scene_metrics\n"
        "ev = tdpcr_edge.scoring.Evaluation(3)\n"
        "x = np.random.default_rng(0).random((2, 16, 16), np.float32)\n"
        "ev.add(x, np.zeros((16, 16), np.uint8), valid=np.ones((16, 16), bool), optical=x, clear=x * 0.9,\n"
        "       labels=np.zeros((16, 16), np.int64), cloud=np.zeros((16, 16), np.float32))\n"
        "assert ev.result()['model']['oa'] == 100.0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchmetrics')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
