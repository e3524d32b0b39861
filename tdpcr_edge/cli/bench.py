"""`tdpcr-edge bench`: every backend and precision on the same held-out tiles."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .console import console, print_wrote, stage_status
from .options import Calib, CalibTiles, DriftBudget, EvalTiles, Tile, choices, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def bench(
        report: Annotated[Path, typer.Option("--report", help="Folder for report.json, report.md, report.png (and artifacts/, engines/).")],
        checkpoint: Annotated[
            Optional[list[Path]],
            typer.Option(
                help="Checkpoint (the shipped tiny model when left out); repeat it to compare models in one report, each row judged "
                "against its own model's FP32 and every row timed together."
            ),
        ] = None,
        precisions: Annotated[str, typer.Option(help=f"Comma-separated precisions, of {c.precision_names}.")] = c.precision_names.replace(
            " ", ""
        ),
        backends: Annotated[
            str,
            typer.Option(help=f"Comma-separated backends, of {c.backend_names}; rows this machine cannot run are listed with the reason."),
        ] = c.backend_names.replace(" ", ""),
        data: Annotated[
            str, typer.Option(help="Held-out data: 'synthetic', a scene folder or a data-set spec (test split).")
        ] = "synthetic",
        tiles: Annotated[int, typer.Option(min=1, help="Held-out tiles.")] = 16,
        tile: Tile = 256,
        warmup: Annotated[int, typer.Option(min=0, help="Untimed calls before timing.")] = 3,
        iterations: Annotated[int, typer.Option(min=1, help="Timed calls per row.")] = 20,
        rounds: Annotated[
            int,
            typer.Option(
                min=1,
                help="Blocks the timed calls of each row are split into; each block runs the row alone, the rows' order rotated each "
                "round; a round over 10% slower than the row's best is left out.",
            ),
        ] = 5,
        artifacts: Annotated[
            Optional[Path], typer.Option(help="Where artifacts are reused from or exported to (default REPORT/artifacts).")
        ] = None,
        calib: Calib = "synthetic",
        calib_tiles: CalibTiles = 32,
        eval_tiles: EvalTiles = 16,
        target: Annotated[
            Optional[c.target],
            typer.Option(help="Target profile of the exports bench makes (x86-cpu: CPU INT8 placement, gates on OpenVINO)."),
        ] = None,
        drift_budget: DriftBudget = None,
        skip: Annotated[str, typer.Option(help="Rows to leave out, comma-separated names, e.g. torch-fp32-compile-cpu.")] = "",
    ) -> None:
        """Every backend and precision on the same held-out tiles: accuracy, latency, memory; report files."""
        from ..bench.options import BenchOptions
        from ..bench.run import run_bench
        from ..report.bench_report import write_report

        opts = BenchOptions(
            report=report,
            checkpoints=tuple(checkpoint or ()),
            backends=backends,
            precisions=precisions,
            data=data,
            tiles=tiles,
            tile=tile,
            warmup=warmup,
            iterations=iterations,
            rounds=rounds,
            artifacts=artifacts,
            calib=calib,
            calib_tiles=calib_tiles,
            eval_tiles=eval_tiles,
            target=value(target),
            drift_budget=drift_budget,
            skip=skip,
        )
        with stage_status("bench") as stage:
            result = run_bench(opts, on_stage=stage)
        print_bench(result)
        print_wrote(*write_report(result, report))

    @app.command("report")
    def report_cmd(
        benchmark_json: Annotated[
            Path, typer.Argument(help="pytest-benchmark output: pytest benchmarks --benchmark-only --benchmark-json FILE")
        ],
        out: Annotated[Path, typer.Option("--report", help="Folder for report.json, report.md, report.png.")],
    ) -> None:
        """Turn pytest-benchmark JSON into the same report `tdpcr-edge bench` writes."""
        from ..report.bench_report import from_benchmark_json, write_report

        print_wrote(*write_report(from_benchmark_json(benchmark_json), out))


def print_bench(report: dict) -> None:
    """The report's table, with the columns report.md has (one spec, ``bench_report.columns``)."""
    from ..report.bench_report import columns, table, tie_note
    from ..report.rows import by_model, fastest_within_budget, row_label

    out = Table(title=f"accuracy against latency: {report['device_label']}, {report['date']}, {report.get('tiles', '?')} tiles")
    for header, _, _, align in columns(report):
        out.add_column(header, justify=align)
    for cells in table(report):
        out.add_row(*cells)
    console.print(out)
    for _, own in by_model(report):
        best = fastest_within_budget(own)
        if best is not None:
            console.print(
                f"fastest within the drift budget: {row_label(best)}, {best['latency_ms_p50']:.1f} ms per tile{tie_note(own, best)}",
                highlight=False,
            )
    for s in report.get("skipped", []):
        console.print(f"  not run: {row_label(s)}: {s['reason']}", highlight=False, markup=False)
