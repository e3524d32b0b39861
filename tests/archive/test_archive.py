"""Whole archives: the same scenes in this process and on a local Ray instance (2 CPUs), a
worker killed mid-scene, a corrupt scene among good ones, reruns that skip finished scenes,
and the pooled summary."""

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tdpcr_edge.archive.job import STATE, ArchiveOptions
from tdpcr_edge.archive.run import run_archive
from tdpcr_edge.data.scenes import FILES, write_scene
from tdpcr_edge.data.synthetic import make_scene
from tdpcr_edge.stream.scene_metrics import pool_accuracy
from tests.helpers import run_main

pytestmark = pytest.mark.slow  # end to end: training, exporting, streaming or compiling

OUTPUTS = ("reconstruction.tif", "classes.tif", "confidence.tif")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Four good scenes, the first larger (so a worker can be killed in the middle of it),
    and one whose optical file is truncated."""
    root = tmp_path_factory.mktemp("archive")
    jobs = []
    for i, size in enumerate((320, 96, 128, 96)):
        folder = write_scene(root / f"s{i}", make_scene(40 + i, 0, size))
        jobs.append(
            {
                "name": f"s{i}",
                "optical": folder / FILES["optical"],
                "sar": folder / FILES["sar"],
                "reference": folder / FILES["clear"],
                "labels": folder / FILES["labels"],
                "cloud": None,
            }
        )
    bad = write_scene(root / "bad", make_scene(49, 0, 96))
    data = (bad / FILES["optical"]).read_bytes()
    (bad / FILES["optical"]).write_bytes(data[: len(data) // 2])
    jobs.append(
        {"name": "bad", "optical": bad / FILES["optical"], "sar": bad / FILES["sar"], "reference": None, "labels": None, "cloud": None}
    )
    return jobs


def stream_options(ckpt):
    return {"model": str(ckpt), "tile": 64, "overlap": 16, "batch": 4, "workers": 1, "quicklook": False}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, scenes, random_checkpoint):
    """The reference run, on one thread as each single-CPU Ray actor runs: float sums depend
    on the thread count (1 DN apart on two threads), so only equal threads compare bit for bit."""
    out = tmp_path_factory.mktemp("archive-here") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_archive(scenes, ArchiveOptions(out=out, stream=stream_options(random_checkpoint)))
    finally:
        torch.set_num_threads(threads)
    return out, summary


def same_outputs(a: Path, b: Path) -> bool:
    import rasterio

    for name in OUTPUTS:
        with rasterio.open(a / name) as x, rasterio.open(b / name) as y:
            if not np.array_equal(x.read(), y.read(), equal_nan=True):
                return False
    return True


def test_in_process_archive_and_its_summary(in_process, scenes):
    out, s = in_process
    rows = {r["name"]: r for r in s["rows"]}
    assert (s["scenes"], s["done"], s["failed"], s["skipped"]) == (5, 4, 1, 0)
    assert rows["bad"]["status"] == "failed" and "optical_cloudy.tif" in rows["bad"]["error"] and "\n" not in rows["bad"]["error"]
    assert all(rows[f"s{i}"]["status"] == "done" and rows[f"s{i}"]["attempts"] == 1 for i in range(4))
    assert s["tiles"] == sum(rows[f"s{i}"]["tiles"] for i in range(4)) and s["tiles_per_s"] > 0
    # The pooled accuracy covers every valid pixel of the scored scenes.
    assert s["accuracy"]["model"]["pixels"] == sum(
        int(np.prod(json.loads((out / f"s{i}" / "run.json").read_text())["inputs"]["size"])) for i in range(4)
    )
    assert 0 < s["accuracy"]["model"]["miou"] <= 100 and s["accuracy"]["input"]["psnr"] < 100
    md = (out / "summary.md").read_text()
    assert "| bad | failed |" in md and "Pooled over the archive" in md
    assert json.loads((out / "summary.json").read_text())["failed"] == 1
    assert not (out / "bad" / "reconstruction.tif").exists()


def test_rerun_skips_complete_scenes(in_process, scenes, random_checkpoint, tmp_path):
    out, _ = in_process
    before = {r["name"]: (out / r["name"] / "run.json").stat().st_mtime_ns for r in scenes if r["name"] != "bad"}
    again = run_archive(scenes, ArchiveOptions(out=out, stream=stream_options(random_checkpoint)))
    # Only the failed scene runs again; nothing finished is recomputed (no scene's run.json rewritten).
    assert (again["done"], again["skipped"], again["failed"]) == (0, 4, 1)
    assert {n: (out / n / "run.json").stat().st_mtime_ns for n in before} == before
    # Other options are another result: every good scene runs again (on a copy: the module's
    # in-process outputs are the reference of the Ray test).
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    changed = run_archive(scenes[:2], ArchiveOptions(out=copy, stream={**stream_options(random_checkpoint), "overlap": 8}))
    assert (changed["done"], changed["skipped"]) == (2, 0)


def test_cli_archive_exits_2_when_a_scene_failed(scenes, random_checkpoint, tmp_path, capsys, monkeypatch):
    csv = tmp_path / "pairs.csv"
    csv.write_text("optical,sar,name\n" + "".join(f"{j['optical']},{j['sar']},{j['name']}\n" for j in (scenes[1], scenes[4])))
    code, stdout, stderr = run_main(
        ["infer", "--pairs", csv, "--out", tmp_path / "out", "--model", random_checkpoint, "--tile", "64", "--overlap", "16"],
        capsys,
        monkeypatch,
    )
    assert code == 2
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: bad:") and "optical_cloudy.tif" in errors[0]
    assert (tmp_path / "out" / "s1" / "reconstruction.tif").exists() and (tmp_path / "out" / "summary.md").exists()
    code, _, stderr = run_main(
        ["infer", "--optical", scenes[1]["optical"], "--sar", scenes[1]["sar"], "--out", tmp_path / "o2", "--ray", "local"],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--ray runs a list of scenes" in stderr


def test_pool_accuracy_is_pixel_exact():
    def sums(se, px, bands, cm):
        return {
            "model": {"se": se, "ae": 0.0, "ssim": 0.9 * px, "sam": 2.0 * px, "px": px, "bands": bands},
            "input": {"se": 4 * se, "ae": 0.0, "ssim": 0.5 * px, "sam": 9.0 * px, "px": px, "bands": bands},
            "confusion": cm,
        }

    pooled = pool_accuracy([sums(1.0, 100, 1300, [[5, 0], [0, 5]]), sums(3.0, 300, 3900, [[0, 10], [0, 10]])])
    assert pooled["model"]["psnr"] == pytest.approx(10 * np.log10(5200 / 4.0))  # from the pooled squared error, not a mean of PSNRs
    assert pooled["model"]["pixels"] == 400 and pooled["model"]["ssim"] == pytest.approx(0.9)
    assert pooled["model"]["oa"] == pytest.approx(100 * 20 / 30)  # the summed confusion matrix
    assert pooled["model"]["miou"] == pytest.approx(100 * (5 / 15 + 15 / 25) / 2)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is in the cluster extra that make test installs; this environment lacks it")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="tdpcr-edge")
    yield ray
    ray.shutdown()


def test_ray_archive_matches_in_process_and_survives_a_killed_worker(ray_cluster, in_process, scenes, random_checkpoint, tmp_path):
    """Two single-CPU actors. The worker of the large scene is killed (ray.kill, restart
    allowed) in the middle of it: Ray restarts the actor and runs the scene again, which
    continues from its journal. The corrupt scene fails alone."""
    ray = ray_cluster
    here, _ = in_process
    out = tmp_path / "ray"
    opts = ArchiveOptions(out=out, stream=stream_options(random_checkpoint), ray="local", workers=2, cpus_per_worker=1)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(summary=run_archive(scenes, opts)))
    thread.start()
    marker, journal = out / STATE / "s0.worker", out / "s0" / ".partial" / "journal.json"
    deadline = time.time() + 120
    while not (marker.exists() and journal.exists()) and thread.is_alive() and time.time() < deadline:
        time.sleep(0.005)  # the scene has started and saved its first strip
    assert marker.exists() and thread.is_alive(), "the large scene finished before its worker could be killed"
    ray.kill(ray.get_actor(marker.read_text(), namespace="tdpcr-edge"), no_restart=False)
    thread.join(timeout=300)
    s = result["summary"]
    rows = {r["name"]: r for r in s["rows"]}
    assert s["engine"].startswith("ray") and s["workers"] == 2 and s["startup_s"] > 0
    assert rows["s0"]["status"] == "done" and rows["s0"]["attempts"] == 2
    assert json.loads((out / "s0" / "run.json").read_text())["tiles"]["resumed_from_row"] is not None
    assert rows["bad"]["status"] == "failed" and "optical_cloudy.tif" in rows["bad"]["error"]
    assert (s["done"], s["failed"]) == (4, 1)
    assert len({rows[f"s{i}"]["worker"] for i in range(4)} - {None}) >= 2  # both actors served scenes
    for i in range(4):
        assert same_outputs(here / f"s{i}", out / f"s{i}"), f"s{i} differs from the in-process run"
