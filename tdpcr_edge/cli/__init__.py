"""`tdpcr-edge`: a thin command layer over the library, one module per command. Each command
parses its options (declared in ``cli.options``, choices from the registries), calls one
library function and prints its result. Every failure is one line on stderr: bad input,
usage and missing libraries exit 2, a refused drift gate exits 3 (``errors``)."""

import sys

import typer

try:  # typer >= 0.25 carries its own click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors

from ..errors import EXIT_USAGE, TdpcrError, missing_module
from . import ablation, bench, build_engine, check, compare, comparison, doctor, evaluate, export, infer, info, sign, synth, train, verify
from .console import err_console, print_error

COMMANDS = (info, synth, train, evaluate, ablation, comparison, export, compare, infer, bench, build_engine, check, sign, verify, doctor)


def build_app() -> typer.Typer:
    """The app with every command, its choices read from the registries as they are now."""
    app = typer.Typer(
        name="tdpcr-edge",
        help="TDP-CR cloud removal and land-cover segmentation: train, evaluate, export, deploy.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for module in COMMANDS:
        module.register(app)
    return app


# typer validates through pydantic; its wording, made ours.
_WORDING = (
    ("Value error, ", ""),
    ("Input should be greater than or equal to ", "must be at least "),
    ("Input should be less than or equal to ", "must be at most "),
    ("Input should be greater than ", "must be greater than "),
)


def usage_message(text: str) -> str:
    for old, new in _WORDING:
        text = text.replace(old, new)
    return text


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(build_app())
    try:
        code = command.main(args=argv, prog_name="tdpcr-edge", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else command.get_help(command.make_context("tdpcr-edge", [])))
        sys.exit(0)
    except click_errors.UsageError as exc:
        # click's usage errors in one line, like ours: `infer --batch 0` names the option and the range.
        where = exc.ctx.command_path if exc.ctx else "tdpcr-edge"
        print_error(f"{where}: {usage_message(exc.format_message())} (see `{where} --help`)")
        sys.exit(EXIT_USAGE)
    except typer.Abort:
        err_console.print("interrupted")
        sys.exit(130)
    except TdpcrError as exc:
        print_error(str(exc))
        sys.exit(exc.exit_code)
    except ModuleNotFoundError as exc:
        # A runtime install (no torch, no export stack) running a command that needs them.
        missing = missing_module(exc, f"tdpcr-edge {argv[0] if argv else (sys.argv[1] if len(sys.argv) > 1 else '')}".strip())
        if missing is None:
            raise
        print_error(str(missing))
        sys.exit(missing.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def __getattr__(name: str):
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
