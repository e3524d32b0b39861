"""The stream writes exactly the outputs a model has: the baselines of the model registry
(reconstruction alone, with a per-band variance, with classes but no reliance), through the
command line, scored, resumed, and skipping clear tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import CLASS_COLORS, CLASS_NAMES, make_scene
from tdpcr_edge.model import build_model
from tdpcr_edge.stream import StreamOptions, run_stream
from tdpcr_edge.train.checkpoint import Checkpoint, save_checkpoint
from tests.helpers import run_main
from tests.stream.test_stream import _straight_and_stopped

MODELS = {  # name: (architecture, size, the files it streams to)
    "dsen2cr": ("dsen2cr", "small", {"reconstruction.tif"}),
    "uncrtaints": ("uncrtaints", "small", {"reconstruction.tif", "uncertainty.tif"}),
    "concat": ("tdpcr-concat", "tiny", {"reconstruction.tif", "classes.tif"}),
}


def baseline_checkpoint(path: Path, arch: str, size: str) -> Path:
    """An untrained network of ``arch`` in a real checkpoint file (as conftest's random_checkpoint)."""
    torch.manual_seed(0)
    model = build_model(size, arch=arch)
    save_checkpoint(path, Checkpoint(model.config, {}, Normalization(), list(CLASS_NAMES), list(CLASS_COLORS)), model)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("baselines")
    return {name: baseline_checkpoint(folder / f"{name}.pt", arch, size) for name, (arch, size, _) in MODELS.items()}


@pytest.fixture(scope="module")
def scene96(tmp_path_factory) -> Path:
    """96 x 96: two tile rows and columns at tile 64, overlap 8, so outputs blend in overlaps."""
    folder = tmp_path_factory.mktemp("scene96") / "scene"
    write_scene(folder, make_scene(31, 0, (96, 96)))
    return folder


@pytest.mark.parametrize("name", list(MODELS))
def test_the_stream_writes_exactly_the_models_outputs(name, checkpoints, scene96, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, _, stderr = run_main(
        [
            "infer",
            "--model",
            checkpoints[name],
            "--optical",
            scene96 / FILES["optical"],
            "--sar",
            scene96 / FILES["sar"],
            "--out",
            out,
            "--tile",
            "64",
            "--overlap",
            "8",
            "--reference",
            scene96 / FILES["clear"],
            "--labels",
            scene96 / FILES["labels"],
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, stderr
    expected = MODELS[name][2]
    assert {p.name for p in out.glob("*.tif")} == expected
    assert (out / "quicklook.png").exists() and not (out / ".partial").exists()
    run = json.loads((out / "run.json").read_text())
    assert set(run["outputs"]) == expected
    model = run["accuracy"]["model"]
    assert np.isfinite(model["psnr"]) and ("miou" in model) == ("classes.tif" in expected)
    assert (run["accuracy"]["sums"]["confusion"] is not None) == ("classes.tif" in expected)
    with rasterio.open(out / "reconstruction.tif") as src:
        assert src.count == 13 and src.dtypes[0] == "uint16" and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    if "uncertainty.tif" in expected:
        with rasterio.open(out / "uncertainty.tif") as src:
            assert (src.count, src.dtypes[0], np.isnan(src.nodata)) == (1, "float32", True)
            assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and "mean over the optical bands" in src.tags()["uncertainty"]
            unc = src.read(1)
        assert np.isfinite(unc).all() and (unc > 0).all()  # every pixel of the synthetic scene is valid


def test_uncertainty_is_the_band_mean_of_the_variance_blended_like_the_reliance(checkpoints, scene96, tmp_path):
    """Inside a tile, where no other tile reaches, the uncertainty is the model's per-band
    variance averaged over the bands."""
    from tdpcr_edge.stream.tiles import TileGrid, spans
    from tdpcr_edge.train.checkpoint import load_checkpoint

    run_stream(_opts(scene96, tmp_path / "out", checkpoints["uncrtaints"], quicklook=False))
    with rasterio.open(tmp_path / "out" / "uncertainty.tif") as src:
        unc = src.read(1)
    norm, s = Normalization(), make_scene(31, 0, (96, 96))
    net = load_checkpoint(checkpoints["uncrtaints"]).build()
    grid = TileGrid(96, 96, 64, 8)
    t = grid.row(0)[0]
    o = torch.from_numpy(norm.optical_to_model(s.optical_cloudy[:, :64, :64]))[None]
    a = torch.from_numpy(norm.sar_to_model(s.sar[:, :64, :64]))[None]
    variance = net.predict(o, a)["uncertainty"][0].numpy()
    (y0, y1), (x0, x1) = spans(grid.ys, 96, 64, 8).owned[t.row], spans(grid.xs, 96, 64, 8).owned[t.col]
    np.testing.assert_allclose(unc[y0:y1, x0:x1], variance.mean(axis=0)[y0:y1, x0:x1], rtol=1e-4)


def _opts(scene, out, ckpt, **kw) -> StreamOptions:
    return StreamOptions(
        **{"optical": scene / FILES["optical"], "sar": scene / FILES["sar"], "out": out, "model": str(ckpt), "tile": 64, "overlap": 8, **kw}
    )


def test_an_uncertainty_run_resumes_to_the_same_cogs(checkpoints, tmp_path):
    """Stopped three quarters through (as a kill leaves it), resumed: the same reconstruction
    and uncertainty COGs as a run never stopped."""
    folder = tmp_path / "tall"
    write_scene(folder, make_scene(7, 0, (224, 64)))  # four tile rows
    options = lambda out, **kw: _opts(folder, out, checkpoints["uncrtaints"], batch=1, workers=1, quicklook=False, **kw)  # noqa: E731
    straight, journal = _straight_and_stopped(options, tmp_path, (3, 4))
    assert journal["flushed"] > 0 and journal["fingerprint"]["outputs"] == ["reconstruction", "uncertainty"]
    assert sorted(p.name for p in (tmp_path / "resumed" / ".partial").glob("*.gtiff")) == ["reconstruction.gtiff", "uncertainty.gtiff"]
    again = run_stream(options(tmp_path / "resumed", resume=True))
    assert again["tiles"]["resumed_from_row"] == journal["flushed"] and again["outputs"] == straight["outputs"]
    for name in ("reconstruction.tif", "uncertainty.tif"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    assert not (tmp_path / "resumed" / ".partial").exists()


def test_skipped_clear_tiles_have_no_uncertainty_and_no_classes(checkpoints, tmp_path):
    """A clear scene, every tile skipped: its input taken as is, with an uncertainty of 0;
    a segmenting model's classes nodata as for TDP-CR."""
    folder = tmp_path / "clear"
    s = make_scene(1, 3, (64, 64))
    s.optical_cloudy = s.optical_clear.copy()
    write_scene(folder, s)
    for name, layer, value in (("uncrtaints", "uncertainty.tif", 0.0), ("concat", "classes.tif", 255)):
        rec = run_stream(_opts(folder, tmp_path / name, checkpoints[name], skip_clear=True, quicklook=False))
        assert rec["tiles"]["skipped_clear"] == rec["tiles"]["processed"] == 1
        with rasterio.open(tmp_path / name / layer) as src:
            assert (src.read(1) == value).all(), name
        with rasterio.open(tmp_path / name / "reconstruction.tif") as src:
            np.testing.assert_array_equal(src.read(), s.optical_clear)


@pytest.mark.parametrize(
    "arch,outputs",
    [
        ("tdpcr", {"reconstruction", "segmentation", "reliance"}),
        ("dsen2cr", {"reconstruction"}),
        ("uncrtaints", {"reconstruction", "uncertainty"}),
        ("tdpcr-concat", {"reconstruction", "segmentation"}),
    ],
)
def test_the_replay_runner_replays_only_the_models_outputs(arch, outputs):
    from tdpcr_edge.backends.replay_runner import ReplayRunner
    from tdpcr_edge.model.registry import get_config

    config = get_config("small", arch)
    runner = ReplayRunner(config.to_dict())
    optical = np.random.default_rng(0).random((2, config.optical_bands, 32, 32), dtype=np.float32)
    res = runner(optical, np.zeros((2, config.sar_bands, 32, 32), np.float32))
    assert set(res) == outputs
    np.testing.assert_array_equal(res["reconstruction"], optical)
    if "uncertainty" in res:
        assert res["uncertainty"].shape == optical.shape and (res["uncertainty"] > 0).all()
