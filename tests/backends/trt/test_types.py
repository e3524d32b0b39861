"""The TensorRT calls of the engine builder and the TensorRT runner, type-checked with mypy
against NVIDIA's published API stubs (tensorrt-stubs, which `make test` downloads into
.venv/stubs). The stubs are not importable code: they are unpacked apart, never installed,
since installing them makes `import tensorrt` succeed as an empty namespace package.

The published 10.13.0.35.1 stubs do not parse as they are: their generator named parameters
`in` and `out` (Python keywords) and put a parameter without a default after ones with
defaults (add_scale_nd). Those two syntax slips are mended when unpacking; the stubs' own
type errors are left alone (ignore_errors for the stub modules). cuda-python's calls are not
checked: its bindings were not available here."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STUBS_WHEELS = sorted((ROOT / ".venv" / "stubs").glob("tensorrt_stubs-*.whl"))
CHECKED = ("tdpcr_edge/backends/trt/engine.py", "tdpcr_edge/backends/trt/runner.py", "tdpcr_edge/backends/trt/compat.py")
CONFIG = """[mypy]
follow_imports = silent
ignore_missing_imports = True
[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
"""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not STUBS_WHEELS, reason="tensorrt-stubs was not downloaded into .venv/stubs (make test does it; offline it cannot)"
    ),
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("mypy") is None, reason="mypy is in the dev extra; this environment lacks it"
    ),
]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trt-stubs")
    with zipfile.ZipFile(STUBS_WHEELS[-1]) as whl:
        for name in whl.namelist():
            if name.startswith(("tensorrt/", "tensorrt_bindings/")) and name.endswith(".pyi"):
                text = whl.read(name).decode()
                text = re.sub(r"\b(in|out): ", r"\1_: ", text)
                text = re.sub(r"(, \w+: \w+ = None, \w+: \w+ = None, \w+: \w+ = None, channel_axis: int)\)", r"\1 = ...)", text)
                (out / name).parent.mkdir(parents=True, exist_ok=True)
                (out / name).write_text(text)
    (out / "mypy.ini").write_text(CONFIG)
    return out


def mypy(stubs: Path, *files: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini"), *files],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"},
        timeout=600,
    )


def test_the_tensorrt_code_type_checks_against_the_stubs(stubs):
    proc = mypy(stubs, *CHECKED)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "no issues found in 3 source files" in proc.stdout


def test_the_stubs_are_in_force(stubs, tmp_path):
    """A wrong call must be reported, or the check above proves nothing."""
    (tmp_path / "bad.py").write_text(
        "import tensorrt as trt\n\nbuilder = trt.Builder(trt.Logger(trt.Logger.WARNING))\n"
        "network = builder.create_network('strongly typed')\nbuilder.build_serialized_network(network)\n"
    )
    proc = mypy(stubs, "bad.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert 'Argument 1 to "create_network" of "Builder" has incompatible type "str"' in proc.stdout
    assert 'Missing positional argument "config" in call to "build_serialized_network"' in proc.stdout
