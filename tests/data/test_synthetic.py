import numpy as np

from tdpcr_edge.data.synthetic import SPECTRA, make_scene, thickness_bin_masks


def test_deterministic_by_seed_and_index():
    a, b = make_scene(3, 5, 48), make_scene(3, 5, 48)
    for field in ("optical_cloudy", "optical_clear", "sar", "labels", "cloud"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(make_scene(4, 5, 48).labels, a.labels)
    assert not np.array_equal(make_scene(3, 5, 48, stream=1).labels, a.labels)


def test_value_conventions():
    s = make_scene(0, 1, 64)
    assert s.optical_cloudy.dtype == np.uint16 and s.optical_cloudy.shape == (13, 64, 64)
    assert s.sar.dtype == np.float32 and s.sar.shape == (2, 64, 64)
    assert -45 < float(np.median(s.sar)) < 5  # dB, not linear power
    assert s.labels.dtype == np.uint8 and s.cloud.min() >= 0 and s.cloud.max() <= 1


def test_classes_have_their_spectra_and_regions():
    s = make_scene(0, 2, 128)
    present = np.unique(s.labels)
    assert len(present) >= 4
    clear = s.optical_clear.astype(np.float32) / 1e4
    for c in present:
        mean = clear[:, s.labels == c].mean(axis=1)
        assert np.argmin(np.abs(SPECTRA - mean).sum(1)) == c


def test_clouds_brighten_and_clear_pixels_stay():
    for i in range(6):
        s = make_scene(1, i, 96)
        if s.cloud.max() < 0.9:
            continue
        thick = s.cloud > 0.9
        assert s.optical_cloudy[1][thick].mean() > 3 * s.optical_clear[1][thick].mean()
        clear = thickness_bin_masks(s.cloud)["clear"]
        diff = np.abs(s.optical_cloudy.astype(int) - s.optical_clear.astype(int))[:, clear]
        # Clear-sky pixels differ only by sensor noise and cloud shadow.
        assert np.median(diff) < 100
        return
    raise AssertionError("no cloudy scene among the first six")


def test_bins_partition_pixels():
    cloud = make_scene(0, 0, 64).cloud
    masks = thickness_bin_masks(cloud)
    assert sum(m.astype(int) for m in masks.values()).max() == 1
    assert sum(m.sum() for m in masks.values()) == cloud.size
