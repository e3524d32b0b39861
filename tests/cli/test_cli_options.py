"""Every numeric option of every command is checked at the boundary: a value out of its range
is one line naming the option, exit 2, before any work (nothing is written)."""

import subprocess
import sys
import typing

import pytest
import typer

from tdpcr_edge.cli import build_app
from tdpcr_edge.cli.options import positive
from tests.helpers import run_main

# What each command needs besides the option under test (placeholders: nothing is read).
REQUIRED = {
    "info": [],
    "synth": ["OUT"],
    "train": ["--out", "OUT"],
    "eval": ["--data", "DATA"],
    "ablation": ["--out", "OUT"],
    "comparison": ["--out", "OUT"],
    "export": ["--out", "OUT"],
    "compare": ["ART"],
    "infer": ["--out", "OUT"],
    "bench": ["--report", "OUT"],
    "report": ["JSON", "--report", "OUT"],
    "build-engine": ["ART", "--out", "OUT"],
    "check": ["ART", "--target", "x86-cpu"],
    "sign": ["ART", "--key", "KEY"],
    "verify": ["ART"],
    "doctor": [],
}


def numeric(annotation) -> type | None:
    for t in (annotation, *typing.get_args(annotation)):
        if t in (int, float):
            return t
    return None


def numeric_options():
    group = typer.main.get_command(build_app())
    for name, command in group.commands.items():
        for p in command.params:
            kind = numeric(p.type_descriptor.annotation)
            if kind is not None:
                yield name, p, kind


def test_every_command_is_walked():
    assert set(typer.main.get_command(build_app()).commands) == set(REQUIRED)


@pytest.mark.parametrize(
    "command,param,kind", list(numeric_options()), ids=lambda v: getattr(v, "name", v) if not isinstance(v, type) else v.__name__
)
def test_out_of_range_is_one_line(command, param, kind, tmp_path, capsys, monkeypatch):
    open_low = getattr(param.callback, "__wrapped__", param.callback) is positive or "positive" in repr(param.callback)
    assert param.min is not None or open_low, f"{command} {param.opts[0]}: a numeric option without a range"
    bad = 0 if open_low and param.min is None else param.min - 1
    args = [a.replace("OUT", str(tmp_path / "out")) for a in REQUIRED[command]]
    code, out, err = run_main([command, *args, param.opts[0], kind(bad)], capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert param.opts[0] in lines[0] and lines[0].startswith("error:"), lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args,flag",
    [
        (["train", "--out", "OUT", "--patch", "30"], "--patch"),
        (["export", "--out", "OUT", "--tile", "66"], "--tile"),
        (["info", "--tile", "66"], "--tile"),
        (["bench", "--report", "OUT", "--tile", "66"], "--tile"),
    ],
)
def test_sizes_must_be_a_multiple_of_the_models_stride(args, flag, tmp_path, capsys, monkeypatch):
    code, _, err = run_main([a.replace("OUT", str(tmp_path / "out")) for a in args], capsys, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and f"{flag} " in lines[0] and "not a multiple of 4" in lines[0], err
    assert not (tmp_path / "out").exists()


def test_piped_output_keeps_long_lines_whole():
    """Piped, a line naming a long path stays one line (rich wrapped it at the console's width)."""
    long = "/" + "/".join(["a-folder-with-a-long-name"] * 12) + "/reconstruction.tif"
    code = (
        "from tdpcr_edge.cli.console import console, err_console, print_wrote\n"
        f"print_wrote({long!r}); console.print('x ' * 150); err_console.print('y ' * 150)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert [line.rstrip() for line in done.stdout.splitlines()] == [f"wrote {long}", ("x " * 150).rstrip()]
    assert [line.rstrip() for line in done.stderr.splitlines()] == [("y " * 150).rstrip()]
