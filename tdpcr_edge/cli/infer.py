"""`tdpcr-edge infer`: whole scenes streamed through the model, or a whole archive."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..errors import ConfigError
from .console import console, fmt, print_error, print_warnings, progress_bar
from .options import Tile, choices, positive, value


def register(app: typer.Typer) -> None:
    c = choices()

    @app.command()
    def infer(
        out: Annotated[Path, typer.Option("--out", help="Output folder (one sub-folder per scene with --pairs).")],
        optical: Annotated[
            Optional[str],
            typer.Option(
                help="Cloudy optical: a multi-band raster, a folder (or comma-separated list) of band files *_B02.tif / *_B8A.jp2 (a SAFE "
                "product too), or a STAC item JSON; bands matched by name."
            ),
        ] = None,
        sar: Annotated[
            Optional[str],
            typer.Option(help="SAR: a 2-band raster or VV,VH files, dB or linear power, on the optical grid (or use --align)."),
        ] = None,
        pairs: Annotated[
            Optional[str],
            typer.Option(
                help="CSV with columns optical,sar[,reference][,labels][,cloud][,name], or a data-set spec (sen12mscr:ROOT, luojia:ROOT, "
                "pairs:CSV)."
            ),
        ] = None,
        model: Annotated[
            Optional[str],
            typer.Option(
                help="Checkpoint, artifact folder, engine folder, or a bench report.json (its fastest row within the drift budget); "
                "default: the shipped checkpoint."
            ),
        ] = None,
        backend: Annotated[
            c.backend,
            typer.Option(help="auto: an engine's, an artifact's own (the one its drift was gated on), or the checkpoint backend."),
        ] = "auto",
        tile: Tile = 256,
        overlap: Annotated[int, typer.Option(min=0, help="Overlap between tiles in pixels (less than half the tile).")] = 32,
        batch: Annotated[
            Optional[int],
            typer.Option(min=1, help="Tiles per inference batch (default 4, split among the workers; with --ray, 2 per CPU of a worker)."),
        ] = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its journal.")] = False,
        skip_clear: Annotated[bool, typer.Option("--skip-clear", help="Skip the model on tiles a cheap cloud score finds clear.")] = False,
        align: Annotated[bool, typer.Option("--align", help="Reproject the SAR onto the optical grid.")] = False,
        resolution: Annotated[
            Optional[float],
            typer.Option(
                min=0.01, help="Output pixel size in metres (default: the finest optical band's; coarser bands are resampled bilinearly)."
            ),
        ] = None,
        optical_offset: Annotated[
            Optional[float],
            typer.Option(
                min=-10000.0,
                max=10000.0,
                help="Added to every optical DN (e.g. -1000 for baseline 04.00 data whose metadata is lost); default: the offset the data "
                "states.",
            ),
        ] = None,
        reference: Annotated[Optional[Path], typer.Option(help="Cloud-free reference GeoTIFF: score the reconstruction.")] = None,
        labels: Annotated[Optional[Path], typer.Option(help="Land-cover labels GeoTIFF: score the classes.")] = None,
        cloud: Annotated[Optional[Path], typer.Option(help="Cloud-thickness GeoTIFF: scores by thickness bin.")] = None,
        band_width: Annotated[
            int,
            typer.Option(
                min=8,
                help="Columns streamed at a time: a wider scene goes through in column bands of about this width, so memory follows it, "
                "not the scene's width.",
            ),
        ] = 2048,
        compress: Annotated[c.compress, typer.Option(help="COG compression (deflate for GDAL < 2.3 readers).")] = "zstd",
        workers: Annotated[
            Optional[int],
            typer.Option(
                min=1,
                help="Concurrent inference calls, each on its share of the CPU cores (default: 2 on CPU backends with 2+ cores; GPU "
                "backends run 1). With --ray: the number of Ray workers.",
            ),
        ] = None,
        ray: Annotated[
            Optional[str],
            typer.Option(
                "--ray",
                help="With --pairs: run the scenes on Ray: local (a private local instance), auto (this machine's cluster) or a cluster "
                "ADDRESS.",
            ),
        ] = None,
        cpus_per_worker: Annotated[
            float, typer.Option(callback=positive, help="With --ray: CPUs each Ray worker holds (its runner's threads).")
        ] = 1.0,
        gpus_per_worker: Annotated[float, typer.Option(min=0.0, help="With --ray: GPUs each Ray worker holds.")] = 0.0,
        public_key: Annotated[
            Optional[Path], typer.Option(help="PEM public key: run only an artifact or engine signed with its private key.")
        ] = None,
        max_retries: Annotated[int, typer.Option(min=0, help="With --ray: runs of a scene after its worker died.")] = 3,
    ) -> None:
        """Stream whole scenes through the model: COG outputs, run.json, quick look; with --pairs a
        whole archive (in this process or on Ray) with a summary."""
        from ..archive.job import default_batch
        from ..stream import StreamOptions, run_stream

        stream = dict(
            model=model,
            backend=value(backend),
            **({"public_key": str(public_key)} if public_key else {}),
            tile=tile,
            overlap=overlap,
            batch=batch,
            skip_clear=skip_clear,
            align=align,
            compress=value(compress),
            workers=workers,
            resolution=resolution,
            optical_offset=optical_offset,
            band_width=band_width,
        )
        if pairs is None and ray is not None:
            raise ConfigError("--ray runs a list of scenes: pass --pairs LIST.csv (or a data-set spec)")
        if pairs is not None:
            run_pairs(pairs, out, ray, stream, cpus_per_worker, gpus_per_worker, max_retries)
            return
        if optical is None or sar is None:
            raise ConfigError("pass --optical and --sar, or --pairs LIST.csv")
        stream["batch"] = batch or default_batch(None)
        opts = StreamOptions(
            optical=Path(optical), sar=Path(sar), out=out, resume=resume, reference=reference, labels=labels, cloud=cloud, **stream
        )
        with progress_bar(f"infer {out.name}", None) as advance:
            record = run_stream(opts, on_tile=advance, on_start=lambda n: advance(0, total=n))
        print_run(out, record)
        print_warnings(record)


def run_pairs(pairs: str, out: Path, ray: str | None, stream: dict, cpus: float, gpus: float, retries: int) -> None:
    from ..archive.job import archive_options
    from ..archive.run import run_archive
    from ..stream import scene_jobs

    jobs = scene_jobs(pairs)
    opts = archive_options(out, stream, ray, cpus, gpus, retries)
    with progress_bar("archive scenes", len(jobs)) as advance:
        summary = run_archive(
            jobs,
            opts,
            on_scene=lambda row: advance(1, description=f"archive scenes ({row['name']}: {row['status']})"),
            on_start=lambda n, skipped: advance(skipped),
        )
    table = Table(
        title=f"{out}: {summary['done']} streamed, {summary['skipped']} skipped as complete, {summary['failed']} failed; "
        f"{summary['tiles']} tiles at {fmt(summary['tiles_per_s'])} tiles/s ({summary['engine']})"
    )
    for col in ("scene", "status", "tiles", "tiles/s", "PSNR dB", "mIoU %", "attempts"):
        table.add_column(col, justify="left" if col in ("scene", "status") else "right")
    for r in summary["rows"]:
        table.add_row(
            r["name"],
            r["status"],
            str(r.get("tiles") or "-"),
            fmt(r.get("tiles_per_s")),
            fmt(r.get("psnr")),
            fmt(r.get("miou"), 1),
            str(r["attempts"]),
        )
    console.print(table)
    for r in summary["rows"]:
        if r.get("error"):
            print_error(f"{r['name']}: {r['error']}")
    console.print(f"wrote {out / 'summary.json'}, {out / 'summary.md'}")
    print_warnings(summary)
    if summary["failed"]:
        raise typer.Exit(2)


def print_run(folder: Path, r: dict) -> None:
    t, lat = r["tiles"], r["latency_ms_per_tile"]
    console.print(
        f"{folder}: {r['inputs']['size'][0]}x{r['inputs']['size'][1]} px, {t['processed']} tiles ({t['skipped_clear']} skipped as clear) "
        f"in {r['wall_s']:.1f} s = {r['tiles_per_s']:.2f} tiles/s, {r['model']['backend']} backend, peak RSS {r['peak_rss_mb']:.0f} MB"
    )
    console.print("  ms per tile: " + ", ".join(f"{k} {v:.1f}" for k, v in lat.items()))
    if r.get("cpu_ms_per_tile"):
        console.print("  CPU ms per tile: " + ", ".join(f"{k} {v:.1f}" for k, v in r["cpu_ms_per_tile"].items()), highlight=False)
    if "accuracy" in r:
        m, i = r["accuracy"]["model"], r["accuracy"]["input"]
        parts = []
        if "psnr" in m:
            parts.append(f"PSNR {i.get('psnr', float('nan')):.2f} -> {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, SAM {m['sam']:.2f} deg")
        if "miou" in m:
            parts.append(f"mIoU {m['miou']:.1f} %, OA {m['oa']:.1f} %")
        for name, b in r["accuracy"]["bins"].items():
            if "psnr" in b["model"]:
                parts.append(f"{name}: {b['input'].get('psnr', float('nan')):.1f} -> {b['model']['psnr']:.1f} dB")
        console.print("  accuracy: " + "; ".join(parts))
