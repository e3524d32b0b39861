"""What every command prints with: the two consoles, the progress bar, number formatting,
one-line errors and warnings."""

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _console(stream, **kw) -> Console:
    # Piped or logged output (CI, `| tee`) gets a wide fixed width instead of rich's 80
    # columns, which would crush the tables, and its lines are not wrapped: a summary line
    # naming a long path stays one line for grep.
    piped = not stream.isatty()
    return Console(width=200 if piped else None, soft_wrap=piped, **kw)


console = _console(sys.stdout)
err_console = _console(sys.stderr, stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable]:
    """A bar that vanishes when done; a failure then leaves only its one error line.
    ``total`` may be None until known: ``advance(0, total=n)`` sets it."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    start = time.perf_counter()
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        update = lambda advance=1, **kw: progress.update(task, advance=advance, **kw)
        yield update if err_console.is_terminal else _lines(description, progress, task, update, start)
        done, total = int(progress.tasks[0].completed), progress.tasks[0].total
    err_console.print(f"{description}: {done}/{total:.0f} in {time.perf_counter() - start:.1f} s", highlight=False)


PIPED_EVERY_S = 10.0  # a log gets a progress line this often, not one per step


def _lines(description: str, progress: Progress, task, update: Callable, start: float) -> Callable:
    """``update`` that also prints a line now and then: piped or logged, rich draws no bar, and
    a long stream or training run would print nothing until it ends."""
    last = [start]

    def advance(advance=1, **kw):
        update(advance, **kw)
        now = time.perf_counter()
        if now - last[0] >= PIPED_EVERY_S:
            last[0] = now
            t = progress.tasks[0]
            of = f"/{t.total:.0f}" if t.total else ""
            err_console.print(f"{description}: {int(t.completed)}{of} after {now - start:.0f} s", highlight=False, markup=False)

    return advance


@contextmanager
def stage_status(label: str) -> Iterator[Callable[[str], None]]:
    """Progress of long work by stages: ``update(stage)``. On a terminal one line that changes
    in place; piped or logged (CI, `make demo | tee`), which would show nothing of it, one
    line per stage with the seconds since the start."""
    if err_console.is_terminal:
        with err_console.status(label) as status:
            yield lambda stage: status.update(f"{label}: {stage}")
        return
    # No line before the first stage: bad options are refused in their one error line.
    start = time.perf_counter()
    yield lambda stage: err_console.print(f"{label}: {stage} ({time.perf_counter() - start:.0f} s)", highlight=False, markup=False)


def fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_error(text: str) -> None:
    # escape: messages name things like [splits] that rich would take for markup and drop.
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def print_warnings(record: dict) -> None:
    for text in record.get("warnings", []):
        err_console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def print_wrote(*paths) -> None:
    for path in paths:
        if path:
            console.print(f"wrote {path}", highlight=False)
