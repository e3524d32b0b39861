"""Streaming scene inference: outputs, seams, resume after kill -9, and every bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.errors import ConfigError, DataError
from tdpcr_edge.stream import StreamOptions, run_stream
from tdpcr_edge.stream.tiles import TileGrid
from tdpcr_edge.train.checkpoint import load_checkpoint
from tests.helpers import copy_scene, rewrite_raster


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """A 200 x 150 scene: not a multiple of the tile, several tile rows and columns."""
    folder = tmp_path_factory.mktemp("stream") / "scene"
    write_scene(folder, make_scene(21, 0, (150, 200)))
    return folder


def opts(scene, out, ckpt, **kw):
    base = dict(optical=scene / FILES["optical"], sar=scene / FILES["sar"], out=out, model=str(ckpt), tile=64, overlap=16, batch=3)
    base.update(kw)
    return StreamOptions(**base)


def test_outputs_are_georeferenced_cogs(scene, tmp_path, random_checkpoint):
    rec = run_stream(
        opts(
            scene,
            tmp_path / "out",
            random_checkpoint,
            reference=scene / FILES["clear"],
            labels=scene / FILES["labels"],
            cloud=scene / FILES["cloud"],
        )
    )
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["classes.tif", "confidence.tif", "quicklook.png", "reconstruction.tif", "run.json"]
    with rasterio.open(scene / FILES["optical"]) as ref:
        for name, count, dtype in (("reconstruction.tif", 13, "uint16"), ("classes.tif", 1, "uint8"), ("confidence.tif", 1, "float32")):
            with rasterio.open(out / name) as src:
                assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", name
                assert (src.crs, src.transform, src.shape) == (ref.crs, ref.transform, ref.shape)
                assert src.count == count and src.dtypes[0] == dtype
    with rasterio.open(out / "classes.tif") as src:
        assert src.colormap(1)[1][:3] == (0, 100, 0) and src.nodata == 255
    on_disk = json.loads((out / "run.json").read_text())
    assert set(on_disk["latency_s"]) == {"read", "preprocess", "infer", "postprocess", "write"}
    assert on_disk["tiles"]["processed"] == len(TileGrid(150, 200, 64, 16)) and on_disk["tiles_per_s"] > 0
    assert on_disk["peak_rss_mb"] > 0
    acc = rec["accuracy"]
    assert {"psnr", "ssim", "sam", "miou", "oa"} <= set(acc["model"]) and "psnr" in acc["input"]
    assert set(acc["bins"]) <= {"clear", "thin", "thick"} and acc["bins"]


def test_matches_whole_scene_inference_away_from_seams(scene, tmp_path, random_checkpoint):
    """Inside tiles, streaming equals running the model on the whole scene; the blend only
    touches the overlaps."""
    run_stream(opts(scene, tmp_path / "out", random_checkpoint, tile=128, overlap=32, quicklook=False))
    norm = Normalization()
    s = make_scene(21, 0, (150, 200))
    with rasterio.open(tmp_path / "out" / "reconstruction.tif") as src:
        streamed = norm.optical_to_model(src.read())
    with rasterio.open(tmp_path / "out" / "classes.tif") as src:
        classes = src.read(1)
    grid = TileGrid(150, 200, 128, 32)
    assert len(grid) == 4
    model = load_checkpoint(random_checkpoint).build()
    o = torch.from_numpy(norm.optical_to_model(s.optical_cloudy))[None]
    a = torch.from_numpy(norm.sar_to_model(s.sar))[None]
    tiles = [t for r in range(len(grid.ys)) for t in grid.row(r)]
    windows = [
        (slice(t.window.row_off, t.window.row_off + t.window.height), slice(t.window.col_off, t.window.col_off + t.window.width))
        for t in tiles
    ]
    cover = np.zeros((150, 200), np.int32)
    for ys, xs in windows:
        cover[ys, xs] += 1
    # Every tile, run alone as the stream saw it, equals the stream wherever no other tile
    # covers the pixel: the blend only touches the overlaps.
    compared = 0
    for ys, xs in windows:
        whole = model.predict(o[..., ys, xs], a[..., ys, xs])
        alone = cover[ys, xs] == 1
        np.testing.assert_allclose(streamed[:, ys, xs][:, alone], whole["reconstruction"][0].numpy()[:, alone], atol=1.5e-4)
        assert (classes[ys, xs][alone] == whole["segmentation"][0].argmax(0).numpy()[alone]).mean() > 0.999
        assert alone.any()  # each of the four tiles is compared, not just the first
        compared += int(alone.sum())
    assert compared == int((cover == 1).sum())


def test_uniform_scene_has_no_tile_grid(tmp_path):
    """A uniform scene reconstructs without seams: across every internal tile border the
    output changes by less than 1e-3 (the shipped model, the default tile and overlap)."""
    h = w = 600
    optical = np.full((13, h, w), 1200, np.uint16)
    sar = np.full((2, h, w), -12.0, np.float32)
    folder = tmp_path / "uniform"
    folder.mkdir()
    profile = dict(driver="GTiff", height=h, width=w, crs="EPSG:32632", transform=rasterio.transform.from_origin(0, 6000, 10, 10))
    with rasterio.open(folder / "o.tif", "w", count=13, dtype="uint16", **profile) as dst:
        dst.write(optical)
    with rasterio.open(folder / "s.tif", "w", count=2, dtype="float32", **profile) as dst:
        dst.write(sar)
    run_stream(StreamOptions(optical=folder / "o.tif", sar=folder / "s.tif", out=tmp_path / "out", quicklook=False))
    with rasterio.open(tmp_path / "out" / "reconstruction.tif") as src:
        rec = src.read().astype(np.float64) / 10000
    grid = TileGrid(h, w, 256, 32)
    margin = 40  # the scene's own border is padding, not a seam
    borders_x = sorted({x for x in grid.xs[1:]} | {x + 256 for x in grid.xs[:-1]})
    borders_y = sorted({y for y in grid.ys[1:]} | {y + 256 for y in grid.ys[:-1]})
    jumps = [np.abs(rec[:, margin:-margin, x] - rec[:, margin:-margin, x - 1]).max() for x in borders_x]
    jumps += [np.abs(rec[:, y, margin:-margin] - rec[:, y - 1, margin:-margin]).max() for y in borders_y]
    assert max(jumps) < 1e-3, max(jumps)


def test_resume_after_kill_gives_identical_pixels(tmp_path, random_checkpoint):
    folder = tmp_path / "tall"
    write_scene(folder, make_scene(4, 0, (640, 96)))
    args = [
        sys.executable,
        "-m",
        "tdpcr_edge.cli",
        "infer",
        "--model",
        str(random_checkpoint),
        "--optical",
        str(folder / FILES["optical"]),
        "--sar",
        str(folder / FILES["sar"]),
        "--tile",
        "64",
        "--overlap",
        "16",
        "--batch",
        "1",
    ]
    subprocess.run(args + ["--out", str(tmp_path / "straight")], check=True, capture_output=True)
    victim = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(victim)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = victim / ".partial" / "journal.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(json.loads(journal.read_text() or "{}").get("strips", [])) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (victim / "reconstruction.tif").exists()
    done = subprocess.run(args + ["--out", str(victim), "--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = json.loads((victim / "run.json").read_text())
    assert run["tiles"]["resumed_from_row"] > 0
    for name in ("reconstruction.tif", "classes.tif", "confidence.tif"):
        with rasterio.open(tmp_path / "straight" / name) as a, rasterio.open(victim / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())
            assert a.overviews(1) == b.overviews(1) == [2]
            half = (a.count, -(-a.height // 2), -(-a.width // 2))
            np.testing.assert_array_equal(a.read(out_shape=half), b.read(out_shape=half))
    assert not (victim / ".partial").exists()


@pytest.fixture(scope="module")
def wide_scene(tmp_path_factory) -> Path:
    """96 x 1100: two overview levels, 23 tile columns of 64 pixels."""
    folder = tmp_path_factory.mktemp("wide") / "scene"
    write_scene(folder, make_scene(8, 0, (96, 1100)))
    return folder


def test_column_bands_give_the_same_cogs(wide_scene, tmp_path, random_checkpoint):
    """A scene streamed in column bands writes the same COGs, byte for byte, as in one band
    (overview levels included: level 1 made band by band, level 2 from it at the end). Batch 1:
    bands change which tiles share a batch, and the model's float results with it."""
    scored = dict(batch=1, quicklook=False, reference=wide_scene / FILES["clear"], labels=wide_scene / FILES["labels"])
    one = run_stream(opts(wide_scene, tmp_path / "one", random_checkpoint, band_width=4096, **scored))
    banded = run_stream(opts(wide_scene, tmp_path / "banded", random_checkpoint, band_width=300, **scored))
    assert (one["tiles"]["column_bands"], banded["tiles"]["column_bands"]) == (1, 4)
    assert banded["accuracy"] == one["accuracy"]  # the scores read the whole width after the last band
    assert banded["tiles"]["processed"] == one["tiles"]["processed"] == len(TileGrid(96, 1100, 64, 16))
    for name in ("reconstruction.tif", "classes.tif", "confidence.tif"):
        with rasterio.open(tmp_path / "banded" / name) as src:
            assert src.overviews(1) == [2, 4]
        assert (tmp_path / "banded" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


def test_a_band_narrower_than_the_tile_is_refused_before_anything_is_written(scene, tmp_path, random_checkpoint):
    with pytest.raises(ConfigError, match=r"--band-width 32 must be at least the tile \(64\)"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, band_width=32))
    assert not (tmp_path / "out").exists()


def _straight_and_stopped(options, tmp_path, part: tuple[int, int]) -> tuple[dict, dict]:
    """A run never stopped (``tmp_path/straight``) and one stopped after ``part`` (num, den) of its
    tiles (``tmp_path/resumed``, left as a kill leaves it): the first's record, the second's journal."""
    straight = run_stream(options(tmp_path / "straight"))
    seen = []

    def stop_after():
        seen.append(1)
        if len(seen) == part[0] * straight["tiles"]["processed"] // part[1]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stream(options(tmp_path / "resumed"), on_tile=stop_after)
    return straight, json.loads((tmp_path / "resumed" / ".partial" / "journal.json").read_text())


def test_a_banded_run_resumes_mid_band_to_the_same_cogs(wide_scene, tmp_path, random_checkpoint):
    """Stopped in the third band (the journal, the scratch rasters and the edge pieces left as a
    kill leaves them), resumed: the same COGs as a run never stopped."""
    straight, journal = _straight_and_stopped(
        lambda out: opts(wide_scene, out, random_checkpoint, batch=1, band_width=300, quicklook=False), tmp_path, (2, 3)
    )
    assert journal["band"] == 2 and journal["flushed"] > 0 and not (tmp_path / "resumed" / "reconstruction.tif").exists()
    again = run_stream(opts(wide_scene, tmp_path / "resumed", random_checkpoint, batch=1, band_width=300, quicklook=False, resume=True))
    assert again["tiles"]["resumed_from_band"] == 2 and again["tiles"]["processed"] < straight["tiles"]["processed"]
    for name in ("reconstruction.tif", "classes.tif", "confidence.tif"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    assert not (tmp_path / "resumed" / ".partial").exists()


def test_a_run_with_tiled_scratch_rasters_resumes_to_the_same_cogs(tmp_path, random_checkpoint):
    """520 x 260: tiled scratch rasters (256-pixel blocks, which strips of 48 rows end inside)
    and overview levels made from rows in memory; stopped three quarters through, resumed:
    the same COGs as a run never stopped."""
    folder = tmp_path / "scene"
    write_scene(folder, make_scene(6, 0, (520, 260)))
    straight, journal = _straight_and_stopped(lambda out: opts(folder, out, random_checkpoint, batch=1, quicklook=False), tmp_path, (3, 4))
    assert 256 < journal["flushed"] < 520 and journal["flushed"] % 256
    again = run_stream(opts(folder, tmp_path / "resumed", random_checkpoint, batch=1, quicklook=False, resume=True))
    assert again["tiles"]["resumed_from_row"] == journal["flushed"]
    for name in ("reconstruction.tif", "classes.tif", "confidence.tif"):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


class _Probe:
    """Wraps the stream's runner: records each call's batch size and the most calls in flight."""

    def __init__(self, runner):
        import threading

        self.runner, self.lock, self.now, self.most, self.sizes = runner, threading.Lock(), 0, 0, []

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def __enter__(self):
        self.runner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.runner.__exit__(*exc)

    def __call__(self, optical, sar):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.sizes.append(len(optical))
        try:
            time.sleep(0.05)  # long enough for the other worker's call to overlap
            return self.runner(optical, sar)
        finally:
            with self.lock:
                self.now -= 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPU cores to split among workers")
def test_workers_split_batches_and_agree(scene, tmp_path, random_checkpoint, monkeypatch):
    """Two workers run halves of each batch at once, each on one core, and produce what one
    worker does (up to float rounding: 1 DN, identical classes); torch's thread count is
    restored afterwards."""
    import tdpcr_edge.stream.pipeline as stream

    probes = []

    def probed(model, backend, public_key=None):
        runner, meta = real(model, backend, public_key)
        probes.append(_Probe(runner))
        return probes[-1], meta

    real = stream.open_runner
    monkeypatch.setattr(stream, "open_runner", probed)
    threads = torch.get_num_threads()
    records = {w: run_stream(opts(scene, tmp_path / f"w{w}", random_checkpoint, workers=w, quicklook=False)) for w in (1, 2)}
    one, two = probes
    assert (one.most, max(one.sizes), two.most, max(two.sizes)) == (1, 3, 2, 2)
    assert sum(one.sizes) == sum(two.sizes) == records[1]["tiles"]["processed"]
    assert [records[w]["workers"] for w in (1, 2)] == [1, 2]
    assert torch.get_num_threads() == threads
    for name, tol in (("reconstruction.tif", 1), ("classes.tif", 0), ("confidence.tif", 1e-5)):
        with rasterio.open(tmp_path / "w1" / name) as a, rasterio.open(tmp_path / "w2" / name) as b:
            np.testing.assert_allclose(a.read().astype(np.float64), b.read().astype(np.float64), atol=tol)
    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        run_stream(opts(scene, tmp_path / "w0", random_checkpoint, workers=0))


def test_a_batch_reaches_the_writer_before_the_next_is_read(scene, tmp_path, random_checkpoint, monkeypatch):
    """A finished batch is handed to the writer while the reader is still on the next one: the
    reader, held after the first batch's tiles until a tile is blended, is not waited for
    (the first batch used to leave only when the next batch was submitted)."""
    import threading

    import tdpcr_edge.stream.read as stream

    blended, waited = threading.Event(), []

    def gated(*args):
        for n, item in enumerate(real(*args), 1):
            yield item
            if n == 3 and not waited:  # the first batch (batch=3) is queued
                waited.append(blended.wait(20))

    real = stream.row_items
    monkeypatch.setattr(stream, "row_items", gated)
    run_stream(opts(scene, tmp_path / "out", random_checkpoint, workers=1, quicklook=False), on_tile=blended.set)
    assert waited == [True]


def test_a_failure_to_create_the_scratch_rasters_ends_the_run(scene, tmp_path, random_checkpoint, monkeypatch):
    """The scratch rasters are created in the overview thread while the reader starts: a
    failure there is the run's error, the writer does not wait for them, no output appears."""
    from tdpcr_edge.stream.scratch import ScratchRasters

    def fail(self):
        raise DataError("scratch: no space left on device")

    monkeypatch.setattr(ScratchRasters, "create", fail)
    t0 = time.perf_counter()
    with pytest.raises(DataError, match="no space left"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, quicklook=False))
    assert time.perf_counter() - t0 < 30
    assert not any((tmp_path / "out").glob("*.tif"))


def test_small_outputs_are_assembled_beside_the_reconstructions_last_levels(scene, tmp_path, random_checkpoint, monkeypatch):
    """The class and confidence maps' COG copies start once their own overview levels are
    final, while the reconstruction's last levels are still being made."""
    import importlib

    from tdpcr_edge.stream.overviews import StripOverviews

    assembly = importlib.import_module("tdpcr_edge.stream.assemble")
    times = {}
    real_update, real_copy = StripOverviews.update, assembly.rio_copy

    def update(self, flushed, *args, **kw):
        real_update(self, flushed, *args, **kw)
        if self.base.name == "reconstruction.gtiff" and flushed == 150:  # the scene's last strip
            time.sleep(1.0)
            times["reconstruction levels final"] = time.perf_counter()

    def copy(src, dst, **kw):
        times.setdefault(Path(src).stem, time.perf_counter())
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(StripOverviews, "update", update)
    monkeypatch.setattr(assembly, "rio_copy", copy)
    run_stream(opts(scene, tmp_path / "out", random_checkpoint, quicklook=False))
    assert times["classes"] < times["reconstruction levels final"] and times["confidence"] < times["reconstruction levels final"]
    assert times["reconstruction"] > times["reconstruction levels final"]


def test_an_output_that_fails_to_assemble_leaves_none(scene, tmp_path, random_checkpoint, monkeypatch):
    """The three COGs are renamed into place together: one failing copy leaves no output and no
    temporary file."""
    import importlib

    assembly = importlib.import_module("tdpcr_edge.stream.assemble")
    real_copy = assembly.rio_copy

    def copy(src, dst, **kw):
        if Path(src).stem == "confidence":
            raise rasterio.errors.RasterioIOError(f"{dst}: No space left on device")
        return real_copy(src, dst, **kw)

    monkeypatch.setattr(assembly, "rio_copy", copy)
    with pytest.raises(rasterio.errors.RasterioIOError, match="No space left"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, quicklook=False))
    left = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != ".partial")
    assert left == []


@pytest.mark.parametrize("fails", [False, True])
def test_a_runner_is_activated_while_the_scene_is_opened(scene, tmp_path, random_checkpoint, monkeypatch, fails):
    """A runner that may be activated on any thread (OpenVINO, ONNX Runtime on the CPU) is
    activated beside the set-up and the first reads; one that cannot start leaves nothing."""
    import threading

    import tdpcr_edge.stream.pipeline as stream
    from tdpcr_edge.backends.torch_runner import TorchRunner
    from tdpcr_edge.errors import CheckpointError

    events = {}

    class SlowStart(TorchRunner):
        activates_on_any_thread = True

        def activate_impl(self):
            events["activating on"] = threading.current_thread().name
            time.sleep(0.5)
            if fails:
                raise CheckpointError("model.onnx: cannot compile this graph; export the artifact again")
            super().activate_impl()
            events["active"] = time.perf_counter()

    class Reader(stream.SceneReader):
        def __init__(self, *args, **kw):
            events.setdefault("opening the scene", time.perf_counter())
            super().__init__(*args, **kw)

    real = stream.open_runner
    monkeypatch.setattr(stream, "open_runner", lambda model, backend, key=None: (SlowStart(random_checkpoint), real(model, backend)[1]))
    monkeypatch.setattr(stream, "SceneReader", Reader)
    out = tmp_path / "new" / "out"
    if fails:
        with pytest.raises(CheckpointError, match="cannot compile"):
            run_stream(opts(scene, out, random_checkpoint, workers=1, quicklook=False))
        assert not (tmp_path / "new").exists()
        return
    run_stream(opts(scene, out, random_checkpoint, workers=1, quicklook=False))
    assert events["activating on"] != threading.main_thread().name
    assert events["opening the scene"] < events["active"]
    assert (out / "reconstruction.tif").exists()


def test_only_cpu_backends_share_the_cores(random_checkpoint):
    from tdpcr_edge.backends.ort_runner import OrtRunner
    from tdpcr_edge.backends.torch_runner import TorchRunner
    from tdpcr_edge.probe import cpu_cores

    cpu = TorchRunner(random_checkpoint)
    assert cpu.share_cpu(2) == 2 and cpu.threads == max(1, cpu_cores() // 2)
    assert cpu.share_cpu(1) == 1 and cpu.threads is None
    assert TorchRunner(random_checkpoint, device="cuda").share_cpu(2) == 1
    config = load_checkpoint(random_checkpoint).config.to_dict()
    ort = OrtRunner("model.onnx", config)  # sessions open lazily: no file needed to plan threads
    assert ort.share_cpu(2) == 2 and ort.threads == max(1, cpu_cores() // 2)
    assert ort.share_cpu(1) == 1 and ort.threads == cpu_cores()
    assert OrtRunner("model.onnx", config, providers=["CUDAExecutionProvider"]).share_cpu(2) == 1


def test_truncated_tiff(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    raw = (bad / FILES["optical"]).read_bytes()
    (bad / FILES["optical"]).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"optical_cloudy\.tif: (cannot open|unreadable)"):
        run_stream(opts(bad, tmp_path / "out", random_checkpoint))
    assert not any(p.suffix == ".tif" for p in (tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_crs_mismatch_needs_align(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    with rasterio.open(bad / FILES["sar"]) as src:
        data = src.read()
        t = src.transform
    rewrite_raster(bad / FILES["sar"], data, transform=rasterio.transform.from_origin(t.c + 35, t.f - 15, 10, 10))
    with pytest.raises(DataError, match=r"sar\.tif: CRS, transform or size .* pass --align"):
        run_stream(opts(bad, tmp_path / "out", random_checkpoint))
    assert not (tmp_path / "out").exists()
    rec = run_stream(opts(bad, tmp_path / "aligned", random_checkpoint, align=True, quicklook=False))
    assert rec["tiles"]["processed"] > 0
    # The SAR starts 3.5 pixels east and 1.5 south of the optical grid: the optical's first
    # three columns and first row have no SAR under them and are masked, not read as 0 dB.
    with rasterio.open(tmp_path / "aligned" / "classes.tif") as src:
        nodata = src.read(1) == 255
    assert nodata[:, :3].all() and nodata[0].all()
    assert not nodata[1:, 4:].any()


def test_optical_nodata_is_masked(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    with rasterio.open(bad / FILES["optical"]) as src:
        data = np.maximum(src.read(), 1)  # 0 is nodata in any band; the synthetic scene has true zeros
    data[:, 40:44, 120:126] = 0
    rewrite_raster(bad / FILES["optical"], data, nodata=0)
    run_stream(opts(bad, tmp_path / "out", random_checkpoint, quicklook=False))
    with rasterio.open(tmp_path / "out" / "classes.tif") as src:
        nodata = src.read(1) == 255
    with rasterio.open(tmp_path / "out" / "reconstruction.tif") as src:
        recon = src.read()
    assert nodata.sum() == 24 and nodata[40:44, 120:126].all()
    assert (recon[:, 40:44, 120:126] == 0).all() and (recon[:, 39, 120:126] > 0).all()


def test_overviews_and_compression(tmp_path, random_checkpoint):
    """Scenes over one COG block get overviews, averaged for reflectance (not GDAL's default
    cubic) and the mode for classes; ZSTD unless --compress says otherwise."""
    folder = tmp_path / "big"
    write_scene(folder, make_scene(5, 0, (530, 600)))
    run_stream(opts(folder, tmp_path / "zstd", random_checkpoint, tile=128, overlap=16, batch=8, quicklook=False))
    run_stream(opts(folder, tmp_path / "deflate", random_checkpoint, tile=128, overlap=16, batch=8, quicklook=False, compress="deflate"))
    for name in ("reconstruction", "classes", "confidence"):
        for comp in ("zstd", "deflate"):
            with rasterio.open(tmp_path / comp / f"{name}.tif") as src:
                assert src.overviews(1) == [2], name
                assert src.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == comp.upper() and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(tmp_path / "zstd" / "reconstruction.tif") as src:
        full = src.read().astype(np.float64)
        half = src.read(out_shape=(src.count, 265, 300))  # the overview level
    blocks = full.reshape(13, 265, 2, 300, 2)
    valid = (blocks != 0).sum(axis=(2, 4))  # 0 is the reconstruction's nodata: left out of averages
    mean = np.where(valid > 0, blocks.sum(axis=(2, 4)) / np.maximum(valid, 1), 0)
    assert np.abs(half - mean).max() <= 1.0  # an average, to the rounding of uint16
    with rasterio.open(tmp_path / "zstd" / "classes.tif") as src:
        assert set(np.unique(src.read(1, out_shape=(265, 300)))) <= set(range(6)) | {255}
    with rasterio.open(tmp_path / "deflate" / "reconstruction.tif") as a, rasterio.open(tmp_path / "zstd" / "reconstruction.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_wrong_band_count(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    with rasterio.open(bad / FILES["optical"]) as src:
        data = src.read()[:10]
    rewrite_raster(bad / FILES["optical"], data)
    with pytest.raises(DataError, match=r"optical_cloudy\.tif: optical has 10 bands and no band names; the model expects 13"):
        run_stream(opts(bad, tmp_path / "out", random_checkpoint))
    assert not (tmp_path / "out").exists()


def test_all_nodata_scene(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    with rasterio.open(bad / FILES["optical"]) as src:
        data = np.zeros_like(src.read())
    rewrite_raster(bad / FILES["optical"], data, nodata=0)
    with pytest.raises(DataError, match="every pixel is nodata"):
        run_stream(opts(bad, tmp_path / "out", random_checkpoint))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [(40, 30), (1, 1)])
def test_scenes_smaller_than_a_tile_work(tmp_path, random_checkpoint, size):
    folder = tmp_path / "small"
    write_scene(folder, make_scene(2, 0, size))
    run_stream(opts(folder, tmp_path / "out", random_checkpoint))
    with rasterio.open(tmp_path / "out" / "reconstruction.tif") as src:
        assert src.shape == size and np.isfinite(src.read()).all()


def test_unwritable_output(scene, tmp_path, random_checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    threads = torch.get_num_threads()
    with pytest.raises(DataError, match="output folder is not writable"):
        run_stream(opts(scene, blocker / "out", random_checkpoint, workers=2))
    # The run failed after its runner had set torch's threads for its workers: restored.
    assert torch.get_num_threads() == threads


def test_nan_is_masked_not_spread(scene, tmp_path, random_checkpoint):
    bad = copy_scene(scene, tmp_path / "bad")
    with rasterio.open(bad / FILES["sar"]) as src:
        data = src.read()
    data[:, 70:73, 90:93] = np.nan
    rewrite_raster(bad / FILES["sar"], data)
    run_stream(opts(bad, tmp_path / "out", random_checkpoint, quicklook=False))
    with rasterio.open(tmp_path / "out" / "classes.tif") as src:
        classes = src.read(1)
    with rasterio.open(tmp_path / "out" / "confidence.tif") as src:
        conf = src.read(1)
    assert (classes[70:73, 90:93] == 255).all() and np.isnan(conf[70:73, 90:93]).all()
    assert (classes[69, 89:94] != 255).all() and np.isfinite(conf[69, 89:94]).all()
    assert np.isnan(conf).sum() == 9


def test_skip_clear(tmp_path, random_checkpoint):
    folder = tmp_path / "clear"
    s = make_scene(1, 3, (128, 128))
    s.optical_cloudy = s.optical_clear.copy()  # no cloud at all
    write_scene(folder, s)
    rec = run_stream(opts(folder, tmp_path / "out", random_checkpoint, skip_clear=True, quicklook=False))
    assert rec["tiles"]["skipped_clear"] == rec["tiles"]["processed"] == 9
    with rasterio.open(tmp_path / "out" / "reconstruction.tif") as src:
        np.testing.assert_array_equal(src.read(), s.optical_clear)
    with rasterio.open(tmp_path / "out" / "classes.tif") as src:
        assert (src.read(1) == 255).all()  # no classes where the model was skipped


def test_option_errors(scene, tmp_path, random_checkpoint):
    with pytest.raises(ConfigError, match="--overlap"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, overlap=40))
    with pytest.raises(DataError, match="not found"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, reference=tmp_path / "none.tif"))
    with pytest.raises(ConfigError, match="--compress 'jpeg' is not one of zstd, deflate, lzw, none"):
        run_stream(opts(scene, tmp_path / "out", random_checkpoint, compress="jpeg"))
    assert not (tmp_path / "out").exists()


def test_pairs_cli(scene, tmp_path, random_checkpoint):
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        f"optical,sar,name\n{scene / FILES['optical']},{scene / FILES['sar']},a\n{scene / FILES['optical']},{scene / FILES['sar']},b\n"
    )
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tdpcr_edge.cli",
            "infer",
            "--pairs",
            str(csv),
            "--out",
            str(tmp_path / "out"),
            "--model",
            str(random_checkpoint),
            "--tile",
            "64",
            "--overlap",
            "8",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / "a" / "reconstruction.tif").exists() and (tmp_path / "out" / "b" / "run.json").exists()
    assert "tiles/s" in p.stdout
