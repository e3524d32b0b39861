"""The CLI as a user runs it: through the console entry point, in a subprocess, so exit
codes and the one-line error contract are checked for real."""

import json
import subprocess
import sys

import pytest

from tdpcr_edge.data.scenes import FILES


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def one_error_line(proc):
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def test_info_prints_params_and_macs():
    p = run("info", "--config", "tiny", "--tile", "64")
    assert p.returncode == 0, p.stderr
    assert "optical_encoder" in p.stdout and "total" in p.stdout and "MACs" in p.stdout


def test_synth_eval_end_to_end(tmp_path, random_checkpoint):
    p = run("synth", tmp_path / "scenes", "--scenes", "2", "--size", "48", "--seed", "3")
    assert p.returncode == 0, p.stderr
    p = run(
        "eval",
        "--data",
        tmp_path / "scenes",
        "--checkpoint",
        random_checkpoint,
        "--json",
        tmp_path / "e.json",
        "--quicklook",
        tmp_path / "q.png",
    )
    assert p.returncode == 0, p.stderr
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["model"]) == {"psnr", "ssim", "sam", "mae", "miou", "oa"}
    assert set(result["input"]) == {"psnr", "ssim", "sam", "mae"}
    assert set(result["bins"]) <= {"clear", "thin", "thick"} and result["bins"]
    for b in result["bins"].values():
        assert set(b) == {"model", "input"}
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PSNR" in p.stdout and "thick" in p.stdout


def test_eval_missing_folder(tmp_path):
    line = one_error_line(run("eval", "--data", tmp_path / "missing"))
    assert "missing" in line and "data folder not found" in line


def test_eval_corrupt_checkpoint(tmp_path, scene_dir):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    line = one_error_line(run("eval", "--data", scene_dir, "--checkpoint", bad, "--json", tmp_path / "e.json"))
    assert "bad.pt" in line
    assert not (tmp_path / "e.json").exists()


def test_eval_wrong_band_count(tmp_path, scene_dir):
    import rasterio

    bad = tmp_path / "scene"
    bad.mkdir()
    for f in (scene_dir / "scene_0000").iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    with rasterio.open(bad / FILES["sar"]) as src:
        profile, data = src.profile, src.read()[:1]
    profile.update(count=1)
    with rasterio.open(bad / FILES["sar"], "w", **profile) as dst:
        dst.write(data)
    line = one_error_line(run("eval", "--data", bad, "--json", tmp_path / "e.json"))
    assert "sar.tif" in line and "SAR has 1 bands, the model expects 2" in line
    assert not (tmp_path / "e.json").exists()


def test_train_bad_data_folder(tmp_path):
    line = one_error_line(run("train", "--out", tmp_path / "run", "--data", tmp_path / "nowhere", "--steps", "1"))
    assert "nowhere" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,match", [(["--scenes", "0"], "--scenes"), (["--size", "4"], "--size")])
def test_synth_bad_options(tmp_path, args, match):
    line = one_error_line(run("synth", tmp_path / "out", *args))
    assert match in line


def test_synth_output_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_error_line(run("synth", tmp_path / "file", "--scenes", "1", "--size", "32"))
    assert "not a folder" in line


@pytest.mark.parametrize(
    "args,match",
    [
        (["--precision", "int4"], "'int4' is not one of 'fp32', 'fp16', 'bf16', 'int8', 'mixed'"),
        (["--target", "mars-rover"], "'mars-rover' is not one of"),
        (["--precision", "int8", "--calib", "NOCALIB"], "data folder not found"),
        (["--drift-budget", "speed=2"], "unknown drift budget key"),
    ],
)
def test_export_option_errors(tmp_path, args, match):
    args = [str(tmp_path / "nocalib") if a == "NOCALIB" else a for a in args]
    line = one_error_line(run("export", "--out", tmp_path / "art", *args))
    assert match in line
    assert not (tmp_path / "art").exists()


def test_export_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    line = one_error_line(run("export", "--out", tmp_path / "art", "--checkpoint", bad))
    assert "bad.pt" in line and not (tmp_path / "art").exists()


def test_export_and_compare_cli(tmp_path, random_checkpoint):
    p = run(
        "export", "--out", tmp_path / "art", "--checkpoint", random_checkpoint, "--precision", "fp32", "--tile", "32", "--eval-tiles", "2"
    )
    assert p.returncode == 0, p.stderr
    assert "fp32" in p.stdout and "within budget" in p.stdout
    p = run("compare", tmp_path / "art", "--tiles", "2")
    assert p.returncode == 0, p.stderr
    assert "art" in p.stdout and "dPSNR" in p.stdout
