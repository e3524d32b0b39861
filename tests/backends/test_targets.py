"""Target profiles: shipped inside the package, every key checked on load."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tdpcr_edge import probe
from tdpcr_edge.backends.targets import list_profiles, load_profile, profiles_dir
from tdpcr_edge.doctor import profile_pick
from tdpcr_edge.errors import ConfigError
from tdpcr_edge.probe import CpuIsa


def test_profiles_are_package_data():
    assert profiles_dir().parent.name == "tdpcr_edge" and profiles_dir().name == "target_profiles"
    assert {"x86-cpu", "jetson-orin-nano-jp6"} <= set(list_profiles())
    for name in list_profiles():
        assert load_profile(name).name == name


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name in ("x86-cpu", "jetson-orin-nano-jp6"):
        shutil.copy(profiles_dir() / f"{name}.toml", tmp_path / f"{name}.toml")
    monkeypatch.setenv("TDPCR_PROFILES", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "name, old, new, message",
    [
        ("x86-cpu", 'isa = "VNNI"', 'isa = "VNIN"', r"x86-cpu\.toml: precision_by_isa: unknown isa 'VNIN'"),
        ("x86-cpu", 'precision = "bf16"', 'precision = "bf61"', r"x86-cpu\.toml: precision_by_isa: unknown precision 'bf61'"),
        ("x86-cpu", "tile = 256", "tile = 256\ntiles = 512", r"x86-cpu\.toml: unknown key 'tiles'"),
        ("x86-cpu", 'isa = "AMX"', 'isa = "AMX"\nprecison = "bf16"', r"x86-cpu\.toml: unknown key 'precision_by_isa\.0\.precison'"),
        ("x86-cpu", 'backend = "openvino"', 'backend = "openvin"', r"x86-cpu\.toml: backend 'openvin' is not one of"),
        (
            "x86-cpu",
            'int8_placement = "cpu"',
            'int8_placement = "cpu-avx"',
            r"x86-cpu\.toml: int8_placement 'cpu-avx' is not one of tensorrt, cpu, cpu-no-vnni",
        ),
        (
            "x86-cpu",
            'int8_placement = "cpu-no-vnni"',
            'int8_placement = "cpu-7bit"',
            r"x86-cpu\.toml: precision_by_isa\[2\]\.int8_placement 'cpu-7bit' is not one of",
        ),
        (
            "x86-cpu",
            'isa = "AMX"',
            'isa = "AMX"\nint8_placment = "cpu"',
            r"x86-cpu\.toml: unknown key 'precision_by_isa\.0\.int8_placment'",
        ),
        (
            "jetson-orin-nano-jp6",
            'precision = "mixed"',
            'precision = "int4"',
            r"jetson-orin-nano-jp6\.toml: precision: unknown precision 'int4'",
        ),
        ("jetson-orin-nano-jp6", "gpu_sm = 87\n", "", r"jetson-orin-nano-jp6\.toml: missing key 'gpu_sm'"),
        (
            "jetson-orin-nano-jp6",
            "tile = 256",
            'tile = 256\nint8_placement = "cpu-no-vnni"',
            r"jetson-orin-nano-jp6\.toml: int8_placement 'cpu-no-vnni' writes UINT8 activations",
        ),
        ("jetson-orin-nano-jp6", 'min = "10.3"', 'min = "10.3"\nmax_version = "11"', r"unknown key 'tensorrt\.max_version'"),
        ("jetson-orin-nano-jp6", "tile = 256", "tile = 256 256", r"jetson-orin-nano-jp6\.toml: .*line"),
    ],
)
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
    done = subprocess.run(
        [sys.executable, "-m", "tdpcr_edge.cli", "check", "--target", "x86-cpu", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "TDPCR_PROFILES": str(folder)},
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in (done.stderr + done.stdout).strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "x86-cpu.toml" in lines[0] and "VNIN" in lines[0], lines


def _isa(*flags, machine="x86_64"):
    return CpuIsa("Test CPU", machine, frozenset(flags))


# (ISA flags, precision, INT8 placement): what x86-cpu picks on each kind of CPU.
X86_CPU_PICKS = [
    (("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile"), "bf16", "cpu"),  # Xeon with AMX
    (("avx2", "avx512f", "avx512_vnni", "avx512_bf16"), "int8", "cpu"),  # EPYC Zen 4
    (("avx2", "avx_vnni"), "int8", "cpu"),  # client cores with AVX-VNNI
    (("avx2", "fma"), "int8", "cpu-no-vnni"),  # AVX2 only: 16-bit pair sums
    (("avx2", "avx512f"), "int8", "cpu-no-vnni"),  # AVX-512 without VNNI (Skylake-SP)
    (("sse4_2",), "fp32", "cpu-no-vnni"),  # no AVX2: FP32 (INT8 only if forced, placed not to saturate)
]


@pytest.mark.parametrize("flags, precision, placement", X86_CPU_PICKS)
def test_x86_cpu_picks_precision_and_placement_by_isa(monkeypatch, flags, precision, placement):
    """The profile reads this machine's ISA through probe.cpu_isa (faked here): an export
    for x86-cpu (artifact.plan reads precision_for() and int8_placement) gets both."""
    monkeypatch.setattr(probe, "cpu_isa", lambda: _isa(*flags))
    p = load_profile("x86-cpu")
    assert p.precision_for()[0] == precision and p.int8_placement == placement
    assert p.default_int8_placement == "cpu"


def test_arm_falls_through_to_fp32(monkeypatch):
    monkeypatch.setattr(probe, "cpu_isa", lambda: _isa("asimd", "asimddp", "bf16", machine="aarch64"))
    assert load_profile("x86-cpu").precision_for() == ("fp32", "no faster path on this CPU")


def test_an_avx2_only_cpu_exports_int8_placed_for_it(monkeypatch, tmp_path):
    """What `export --target x86-cpu` resolves before any work on an AVX2-only CPU; an
    explicit --int8-placement still wins."""
    from tdpcr_edge.export.artifact import ExportOptions, plan

    pytest.importorskip("openvino")
    monkeypatch.setattr(probe, "cpu_isa", lambda: _isa("avx2", "fma"))
    art = plan(ExportOptions(out=tmp_path / "a", target="x86-cpu"), lambda _: None)
    assert (art.precision, art.placement, art.backend, art.chosen_by) == ("int8", "cpu-no-vnni", "openvino", "this CPU has AVX2")
    art = plan(ExportOptions(out=tmp_path / "b", target="x86-cpu", int8_placement="cpu"), lambda _: None)
    assert art.placement == "cpu"
    monkeypatch.setattr(probe, "cpu_isa", lambda: _isa("avx2", "avx512_vnni"))
    assert plan(ExportOptions(out=tmp_path / "c", target="x86-cpu"), lambda _: None).placement == "cpu"


def test_tensorrt_profiles_keep_one_placement(monkeypatch):
    monkeypatch.setattr(probe, "cpu_isa", lambda: _isa("avx2"))
    p = load_profile("jetson-orin-nano-jp6")
    assert p.int8_placement == p.int8_placement_for(_isa("sse4_2")) == "tensorrt"


def test_doctor_names_the_placement_where_a_row_has_its_own():
    p = load_profile("x86-cpu")
    assert profile_pick(p, _isa("avx2", "fma")) == "openvino int8, placement cpu-no-vnni (this CPU has AVX2; the profile's default is cpu)"
    assert profile_pick(p, _isa("avx2", "avx512_vnni")) == "openvino int8 (this CPU has VNNI)"
    assert profile_pick(p, _isa("avx2", "avx512_vnni", "amx_bf16")) == "openvino bf16 (this CPU has AMX)"
    assert profile_pick(p, _isa("sse4_2")) == "openvino fp32 (no faster path on this CPU)"  # fp32: no placement to name
