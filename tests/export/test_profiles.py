"""Target profiles: shipped inside the package, every key checked on load."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tdpcr_edge.errors import ConfigError
from tdpcr_edge.export.profiles import list_profiles, load_profile, profiles_dir


def test_profiles_are_package_data():
    assert profiles_dir().parent.name == "export" and profiles_dir().name == "target_profiles"
    assert {"x86-cpu", "jetson-orin-nano-jp6"} <= set(list_profiles())
    for name in list_profiles():
        assert load_profile(name).name == name


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in ("x86-cpu", "jetson-orin-nano-jp6"):
        shutil.copy(profiles_dir() / f"{name}.toml", tmp_path / f"{name}.toml")
    monkeypatch.setenv("TDPCR_PROFILES", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name, old, new, message", [
    ("x86-cpu", 'isa = "VNNI"', 'isa = "VNIN"', r"x86-cpu\.toml: precision_by_isa: unknown isa 'VNIN'"),
    ("x86-cpu", 'precision = "bf16"', 'precision = "bf61"', r"x86-cpu\.toml: precision_by_isa: unknown precision 'bf61'"),
    ("x86-cpu", 'tile = 256', 'tile = 256\ntiles = 512', r"x86-cpu\.toml: unknown key 'tiles'"),
    ("x86-cpu", 'isa = "AMX"', 'isa = "AMX"\nprecison = "bf16"', r"x86-cpu\.toml: unknown key precision_by_isa\[0\]\.'precison'"),
    ("x86-cpu", 'backend = "openvino"', 'backend = "openvin"', r"x86-cpu\.toml: backend 'openvin' is not one of"),
    ("jetson-orin-nano-jp6", 'precision = "mixed"', 'precision = "int4"', r"jetson-orin-nano-jp6\.toml: precision: unknown precision 'int4'"),
    ("jetson-orin-nano-jp6", 'gpu_sm = 87\n', '', r"jetson-orin-nano-jp6\.toml: missing key 'gpu_sm'"),
    ("jetson-orin-nano-jp6", 'min = "10.3"', 'min = "10.3"\nmax_version = "11"', r"unknown key tensorrt\.'max_version'"),
    ("jetson-orin-nano-jp6", 'tile = 256', 'tile = 256 256', r"jetson-orin-nano-jp6\.toml: .*line"),
])
def test_a_bad_profile_is_one_line_naming_file_and_key(folder, name, old, new, message):
    path = folder / f"{name}.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_profile(name)
    assert "\n" not in str(info.value)


def test_cli_reports_a_bad_profile_in_one_line(folder, tmp_path):
    path = folder / "x86-cpu.toml"
    path.write_text(path.read_text().replace('isa = "VNNI"', 'isa = "VNIN"'))
    done = subprocess.run([sys.executable, "-m", "tdpcr_edge.cli", "check", "--target", "x86-cpu", str(tmp_path / "nothing")], capture_output=True, text=True,
                          env={**__import__("os").environ, "TDPCR_PROFILES": str(folder)})
    assert done.returncode == 2, done.stderr
    lines = [l for l in (done.stderr + done.stdout).strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "x86-cpu.toml" in lines[0] and "VNIN" in lines[0], lines
