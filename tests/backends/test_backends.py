"""The backend registry is the one extension point: a toy backend registered in one place
(tests/backends/toy_backend.py's row) is found by the runner factory, bench, the scene stream, doctor
and every command's --help and choices."""

import json

import pytest

from tdpcr_edge.backends import load_runner
from tdpcr_edge.backends import registry as backends
from tdpcr_edge.bench.matrix import select
from tdpcr_edge.bench.options import BenchOptions
from tdpcr_edge.bench.run import run_bench
from tdpcr_edge.doctor import diagnose
from tdpcr_edge.errors import ConfigError
from tests.backends.toy_backend import ROW, ToyRunner
from tests.helpers import run_main


@pytest.fixture
def toy():
    backends.register(ROW)
    yield ROW
    backends.unregister(ROW.name)


def test_a_toy_backend_is_one_row(toy, random_checkpoint, scene_dir, tmp_path, capsys, monkeypatch):
    assert isinstance(load_runner(random_checkpoint, backend="toy"), ToyRunner)
    assert [c.name for c in select("toy", "fp32")] == ["toy-fp32-cpu"]
    assert any(r.item == "backend toy" and r.status == "ok" for r in diagnose())
    for command in ("infer", "bench"):
        code, out, _ = run_main([command, "--help"], capsys, monkeypatch)
        assert code == 0 and "toy" in out, command

    report = run_bench(
        BenchOptions(
            report=tmp_path / "rep",
            checkpoint=random_checkpoint,
            backends="toy",
            precisions="fp32",
            data=str(scene_dir),
            tiles=2,
            tile=64,
            warmup=0,
            iterations=2,
        )
    )
    (row,) = report["rows"]
    assert row["backend"] == "toy" and row["psnr_delta"] == 0.0 and row["peak_mem_mb"] is not None

    scene = sorted(scene_dir.glob("scene_*"))[0]
    code, _, err = run_main(
        [
            "infer",
            "--optical",
            scene / "optical_cloudy.tif",
            "--sar",
            scene / "sar.tif",
            "--out",
            tmp_path / "out",
            "--model",
            random_checkpoint,
            "--backend",
            "toy",
            "--tile",
            "64",
            "--overlap",
            "16",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "run.json").read_text())["model"]["backend"] == "toy"


def test_an_unregistered_backend_is_a_usage_error(random_checkpoint, capsys, monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="unknown backend 'toy'"):
        load_runner(random_checkpoint, backend="toy")
    code, _, err = run_main(
        ["infer", "--optical", "a.tif", "--sar", "b.tif", "--out", tmp_path / "o", "--backend", "toy"], capsys, monkeypatch
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "'toy' is not one of" in lines[0]


def test_replay_streams_a_scene_but_is_not_offered_to_users(scene_dir, tmp_path, capsys, monkeypatch):
    import numpy as np
    import rasterio

    from tdpcr_edge.stream import StreamOptions, run_stream

    code, out, _ = run_main(["infer", "--help"], capsys, monkeypatch)
    assert code == 0 and "replay" not in out and "replay" not in backends.names()
    assert not any(r.item == "backend replay" for r in diagnose())
    with pytest.raises(ConfigError, match="unknown backend replay"):
        select("replay")  # no bench rows either
    scene = sorted(scene_dir.glob("scene_*"))[0]
    rec = run_stream(
        StreamOptions(
            optical=scene / "optical_cloudy.tif",
            sar=scene / "sar.tif",
            out=tmp_path / "r",
            backend="replay",
            tile=64,
            overlap=16,
            quicklook=False,
        )
    )
    assert rec["model"]["backend"] == "replay" and rec["tiles"]["processed"] == rec["tiles"]["total"]
    # The stored output is the input: what the stream wrote is the input, through its own normalisation and rounding.
    with rasterio.open(tmp_path / "r" / "reconstruction.tif") as a, rasterio.open(scene / "optical_cloudy.tif") as b:
        got, given = a.read().astype(np.int64), b.read().astype(np.int64)
    inside = given <= 10000  # DNs the normalisation clips are not the model's to reproduce
    assert np.abs(got - given)[inside].max() <= 1
    cpu = rec["cpu_ms_per_tile"]
    assert set(cpu) == {"decode", "normalise", "infer", "blend", "encode", "other", "total"} and cpu["decode"] > 0 and cpu["encode"] > 0


def test_an_artifact_backend_without_a_model_runs_the_shipped_artifact():
    """`infer --backend ort` (or openvino, or the replay) without --model: the shipped model's
    packaged FP32 artifact, not a refusal for want of an artifact folder."""
    from tdpcr_edge.contract import shipped_artifact_path
    from tdpcr_edge.stream.options import open_runner

    for backend in ("replay", "ort"):
        if backends.get(backend).missing():
            continue
        runner, meta = open_runner(None, backend)
        assert meta["source"] == str(shipped_artifact_path()) and meta["backend"] == backend
        assert meta["normalization"]["optical_bands"][0] == "B01"
