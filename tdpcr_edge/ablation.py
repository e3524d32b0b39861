"""The fusion ablation: PGF against plain concatenation at an equal training budget
(same steps, batches, seed and schedule), over several training seeds, scored on
held-out scenes of an unseen seed.

One seed proves little here: two runs that differ only in their seed end up to 1 dB
apart under thick cloud, so the summary gives each seed's difference and the mean.
Each run lives in ``OUT/seed-S/FUSION`` and resumes, so runs trained elsewhere (in
parallel, say) are picked up and only scored. With ``qat`` the runs train with INT8
rounding simulated, and each arm is also scored the way it deploys: INT8 simulated with
its trained ranges (train.qat; the exported graph computes the same within 0.01 dB).
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Callable

from .data.sources import SyntheticSource
from .io_utils import atomic_path, write_json
from .scoring import evaluate_scenes
from .train import TrainOptions, load_checkpoint, train
from .train.qat import enable_fake_quant, load_fake_quant_ranges

FUSIONS = ("pgf", "concat")
# The bar the product claims (docs/model.md#pgf-against-concatenation): PGF ahead of concatenation under thick cloud.
CRITERIA = ("thick_psnr", "miou")


def _scores(result: dict) -> dict:
    thick = result["bins"].get("thick", {})
    return {
        "psnr": result["model"]["psnr"],
        "ssim": result["model"]["ssim"],
        "sam": result["model"]["sam"],
        "miou": result["model"]["miou"],
        "oa": result["model"]["oa"],
        "thick_psnr": thick.get("model", {}).get("psnr"),
        "thick_input_psnr": thick.get("input", {}).get("psnr"),
        "thick_miou": thick.get("model", {}).get("miou"),
    }


def _score_run(run: Path, scenes_for: Callable, qat: bool) -> dict:
    ckpt = load_checkpoint(run / "model.pt")
    scenes = scenes_for(ckpt)
    model = ckpt.build()
    result, _ = evaluate_scenes(model, scenes)
    row = {"fp32": _scores(result), "eval": result}
    if qat:
        # The same model, its convolutions now rounding at the trained ranges (clips stay on).
        enable_fake_quant(model)
        load_fake_quant_ranges(model, ckpt.qat_ranges)
        int8, _ = evaluate_scenes(model.eval(), scenes)
        row["int8_simulated"] = _scores(int8)
    return row


def pgf_ahead(differences: list[float]) -> bool:
    """PGF beats concatenation on a metric when it is ahead on the mean and in most seeds."""
    return mean(differences) > 0 and 2 * sum(d > 0 for d in differences) > len(differences)


def run_ablation(
    out: str | Path,
    config: str = "tiny",
    steps: int = 1500,
    seeds: tuple[int, ...] = (0,),
    eval_seed: int = 7,
    eval_scenes: int = 32,
    eval_size: int = 128,
    qat: bool = False,
    on_step: Callable | None = None,
    **train_options,
) -> dict:
    """Train (or resume) both variants for every seed and score them; ``train_options``
    (batch, patch, ...) go to every run alike."""
    out = Path(out)
    cache: dict = {}

    def scenes_for(ckpt):
        if "scenes" not in cache:
            cache["scenes"] = SyntheticSource(eval_seed, ckpt.config.num_classes, ckpt.normalization).scenes(eval_scenes, eval_size)
        return cache["scenes"]

    runs: dict[str, dict] = {}
    for seed in seeds:
        for fusion in FUSIONS:
            run = out / f"seed-{seed}" / fusion
            opts = TrainOptions(out=run, config=config, fusion=fusion, steps=steps, seed=seed, qat=qat, **train_options)
            metrics = train(opts, on_step=on_step)
            row = _score_run(run, scenes_for, qat)
            row["params"] = metrics["phases"]["1"]["total_params"]
            row["train_seconds"] = sum(p["seconds"] for p in metrics["phases"].values())
            runs.setdefault(str(seed), {})[fusion] = row

    kinds = ["fp32"] + (["int8_simulated"] if qat else [])
    keys = ("psnr", "thick_psnr", "ssim", "sam", "miou", "thick_miou")
    summary = {
        "config": config,
        "steps_per_phase": steps,
        "qat": qat,
        "seeds": list(seeds),
        "eval": {"seed": eval_seed, "scenes": eval_scenes, "size": eval_size},
        "runs": runs,
        "mean": {k: {f: {m: mean(runs[str(s)][f][k][m] for s in seeds) for m in keys} for f in FUSIONS} for k in kinds},
        "pgf_minus_concat": {
            k: {m: [runs[str(s)]["pgf"][k][m] - runs[str(s)]["concat"][k][m] for s in seeds] for m in keys} for k in kinds
        },
    }
    summary["pgf_ahead"] = {k: {m: pgf_ahead(summary["pgf_minus_concat"][k][m]) for m in CRITERIA} for k in kinds}
    write_json(out / "ablation.json", summary)
    with atomic_path(out / "ablation.md") as tmp:
        tmp.write_text(ablation_markdown(summary))
    return summary


def ablation_markdown(summary: dict) -> str:
    e = summary["eval"]
    recipe = "quantisation-aware (`--qat`)" if summary["qat"] else "FP32"
    lines = [
        f"Fusion ablation, `{summary['config']}` config, {recipe} training, {summary['steps_per_phase']} steps per phase, "
        f"training seeds {', '.join(map(str, summary['seeds']))}; {e['scenes']} held-out {e['size']}x{e['size']} scenes (seed "
        f"{e['seed']}).",
    ]
    first = next(iter(summary["runs"].values()))
    thick_in = first["pgf"]["fp32"]["thick_input_psnr"]
    for kind, title in (("fp32", "FP32 inference"), ("int8_simulated", "INT8 inference (simulated, trained ranges)")):
        if kind not in summary["mean"]:
            continue
        lines += [
            "",
            f"{title}:",
            "",
            "| seed | fusion | PSNR dB | thick-cloud PSNR dB | SSIM | SAM deg | mIoU % | thick-cloud mIoU % |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        rows = [(s, f, summary["runs"][s][f][kind]) for s in summary["runs"] for f in FUSIONS]
        rows += [("mean", f, summary["mean"][kind][f]) for f in FUSIONS]
        for seed, fusion, r in rows:
            lines.append(
                f"| {seed} | {fusion} | {r['psnr']:.2f} | {r['thick_psnr']:.2f} | {r['ssim']:.3f} | {r['sam']:.2f} | {r['miou']:.1f} | "
                f"{r['thick_miou']:.1f} |"
            )
        d = summary["pgf_minus_concat"][kind]
        ahead = summary["pgf_ahead"][kind]
        lines += [
            "",
            "PGF minus concatenation, per seed: thick-cloud PSNR "
            + ", ".join(f"{x:+.2f}" for x in d["thick_psnr"])
            + f" dB (mean {mean(d['thick_psnr']):+.2f}); mIoU "
            + ", ".join(f"{x:+.1f}" for x in d["miou"])
            + f" points (mean {mean(d['miou']):+.1f}). PGF ahead on the mean and in most seeds: thick-cloud PSNR "
            + ("yes" if ahead["thick_psnr"] else "no")
            + ", mIoU "
            + ("yes" if ahead["miou"] else "no")
            + ".",
        ]
    lines += ["", f"Cloudy input in the thick-cloud bin: {thick_in:.2f} dB.", ""]
    return "\n".join(lines)
