"""The README and docs/ as a user meets them: every `tdpcr-edge` command they show parses with
the options as written, the quick-start commands run, and the layout rules hold."""

import ast
import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from tdpcr_edge.cli import app
from tests.helpers import run_main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)


def commands(block: str) -> list[str]:
    """`tdpcr-edge ...` lines of a shell block, continuations joined, comments dropped."""
    out, current = [], ""
    for line in block.splitlines():
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if line.rstrip().endswith("\\"):
            continue
        line, current = current, ""
        line = re.sub(r"^\.venv/bin/", "", line)
        if line.startswith("torchrun ") and " tdpcr-edge " in line:  # the command each process runs
            line = line[line.index("tdpcr-edge ") :]
        if line.startswith("tdpcr-edge "):
            out.append(re.split(r"\s+#", line)[0].strip())
    return out


def is_synopsis(cmd: str) -> bool:
    """Usage lines (`[--tile 256]`, `CKPT|ART`, `ART...`) describe options rather than run."""
    return any(tok in cmd for tok in ("[", "|", "..."))


ALL = [(p.name, c) for p in PAGES for b in shell_blocks(p) for c in commands(b)]


def test_docs_show_commands():
    assert len(ALL) >= 30, ALL
    assert {"README.md", "cpu.md", "export.md", "streaming.md", "benchmarks.md", "tensorrt.md", "training.md"} <= {p for p, _ in ALL}


@pytest.mark.parametrize(
    "page,cmd", [(p, c) for p, c in ALL if not is_synopsis(c)], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None
)
def test_every_shown_command_parses(page, cmd):
    group = typer.main.get_command(app)
    args = shlex.split(cmd)[1:]
    name, rest = args[0], args[1:]
    sub = group.get_command(click.Context(group), name)
    assert sub is not None, f"{page}: `{cmd}`: no command {name!r}"
    try:
        sub.make_context(name, rest, resilient_parsing=False)
    except click.UsageError as exc:
        pytest.fail(f"{page}: `{cmd}` does not parse: {exc.format_message()}")


@pytest.mark.slow
def test_readme_quick_start_runs_as_written(tmp_path, capsys, monkeypatch):
    """The README's first shell block after 'Quick start', run in a fresh folder."""
    readme = (ROOT / "README.md").read_text()
    block = shell_blocks(ROOT / "README.md")[[i for i, b in enumerate(shell_blocks(ROOT / "README.md")) if "tdpcr-edge synth" in b][0]]
    assert readme.index(block) > readme.index("## Quick start")
    monkeypatch.chdir(tmp_path)
    for cmd in commands(block) + ["tdpcr-edge info --config tiny", "tdpcr-edge doctor"]:
        code, _, err = run_main(shlex.split(cmd)[1:], capsys, monkeypatch)
        assert code == 0, f"`{cmd}` failed: {err[-2000:]}"
    assert (tmp_path / "quicklook.png").exists() and (tmp_path / "scene-out" / "reconstruction.tif").exists()


def test_readme_is_short_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), link


def test_doc_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+\.(?:md|png))(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}"


def test_package_layout():
    """backends/runner.py names the interface only; no module of the package grows past 300 lines."""
    package = ROOT / "tdpcr_edge"
    tree = ast.parse((package / "backends" / "runner.py").read_text())
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in imported if re.search(r"(torch|ort|openvino|trt)_runner|onnxruntime|openvino|tensorrt|^torch", m)}, imported
    long = {p.relative_to(package).as_posix(): n for p in package.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


@pytest.mark.parametrize("page,cmd", [(p, c) for p, c in ALL if is_synopsis(c)])
def test_every_synopsis_names_real_options(page, cmd):
    group = typer.main.get_command(app)
    name = cmd.split()[1]
    sub = group.get_command(click.Context(group), name)
    known = {opt for param in sub.params for opt in (*param.opts, *param.secondary_opts)}
    shown = set(re.findall(r"(--[a-z][a-z0-9-]*)", cmd))
    assert shown and shown <= known, f"{page}: `{name}` has no {sorted(shown - known)}"
