"""An archive of a model without classes: scenes scored without mIoU, a summary without it."""

import json

from tdpcr_edge.archive.job import ArchiveOptions
from tdpcr_edge.archive.run import run_archive
from tdpcr_edge.data.scenes import FILES
from tests.stream.test_model_outputs import baseline_checkpoint


def test_an_archive_of_a_reconstruction_only_model(scene_dir, tmp_path):
    ckpt = baseline_checkpoint(tmp_path / "dsen2cr.pt", "dsen2cr", "small")
    jobs = [
        {
            "name": folder.name,
            "optical": folder / FILES["optical"],
            "sar": folder / FILES["sar"],
            "reference": folder / FILES["clear"],
            "labels": folder / FILES["labels"],
            "cloud": None,
        }
        for folder in sorted(scene_dir.glob("scene_*"))[:2]
    ]
    stream = {"model": str(ckpt), "tile": 64, "overlap": 8, "batch": 2, "workers": 1, "quicklook": False}
    out = tmp_path / "out"
    s = run_archive(jobs, ArchiveOptions(out=out, stream=stream))
    assert (s["done"], s["failed"]) == (2, 0)
    assert all(r["psnr"] is not None and r["miou"] is None for r in s["rows"])
    assert "psnr" in s["accuracy"]["model"] and "miou" not in s["accuracy"]["model"]
    md = (out / "summary.md").read_text()
    assert "mIoU" not in md and "| scene | status | tiles | tiles/s | PSNR dB | worker |" in md
    for job in jobs:
        assert json.loads((out / job["name"] / "run.json").read_text())["outputs"] == ["reconstruction.tif"]
    # A rerun finds every scene complete: its outputs are the ones run.json lists.
    again = run_archive(jobs, ArchiveOptions(out=out, stream=stream))
    assert again["skipped"] == 2 and "miou" not in again["accuracy"]["model"]
