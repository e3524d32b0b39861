"""Training at scale, on this CPU: the data pipeline (loader workers, augmentation, epochs),
the global batch split over processes and accumulation, torchrun with gloo (the same
parameters as one process, a resume at another world size, a killed rank), validation
during training, and the one-line refusals. GPU variants are marked gpu."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from tdpcr_edge.data.dataset import Sample
from tdpcr_edge.data.normalize import Normalization
from tdpcr_edge.data.scenes import SceneArrays
from tdpcr_edge.data.sources import DatasetSource
from tdpcr_edge.data.specs import open_dataset
from tdpcr_edge.errors import ConfigError
from tdpcr_edge.model import TDPCR
from tdpcr_edge.train import TrainOptions, load_checkpoint, train
from tdpcr_edge.train import device as step_devices
from tdpcr_edge.train.samples import MicroBatches, SampleStream, loader, micro_batch
from tests.data import fixtures
from tests.helpers import rewrite_raster, run_main

pytestmark = pytest.mark.slow  # end to end: training, exporting, streaming or compiling

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
TDPCR_EDGE = Path(sys.executable).parent / "tdpcr-edge"


@pytest.fixture(scope="module")
def sen12(tmp_path_factory):
    root = tmp_path_factory.mktemp("sen12") / "sen12mscr"
    fixtures.sen12mscr(root, size=48)
    return root


# --- the data pipeline -----------------------------------------------------------------


def read_all(stream, workers, steps=3, batch=4, rank=0, world=1, accumulate=1):
    return list(loader(stream, MicroBatches(0, steps, batch, rank, world, accumulate), workers))


def test_loader_workers_yield_the_batches_of_no_workers(sen12):
    source = DatasetSource(open_dataset(f"sen12mscr:{sen12}?labels=dfc", split="train"), seed=3)
    stream = SampleStream(source, 1, 4, 32, 3)
    inline, workers = read_all(stream, 0), read_all(stream, 2)
    assert len(inline) == len(workers) == 3
    for a, b in zip(inline, workers):
        assert a.keys() == b.keys() == {"optical", "sar", "clear", "labels", "cloud", "valid"}
        for k in a:
            assert torch.equal(a[k], b[k]), k
    assert inline[0]["optical"].shape == (4, 13, 32, 32) and inline[0]["labels"].dtype == torch.int64


def test_micro_batches_split_the_global_batch_the_same_way_for_any_world_size():
    one = list(MicroBatches(2, 4, 8, rank=0, world=1, accumulate=2))
    ranks = [list(MicroBatches(2, 4, 8, rank=r, world=2, accumulate=1)) for r in range(2)]
    # Step 2 is samples 16..23: micro-batch 0 on rank 0 (or accumulation step 0), 1 on rank 1.
    assert one[0] == ranks[0][0] == [16, 17, 18, 19] and one[1] == ranks[1][0] == [20, 21, 22, 23]
    assert sorted(sum(one, [])) == list(range(16, 32))
    assert micro_batch(8, 2, 2) == 2
    with pytest.raises(ConfigError, match="--batch 6 does not split into 4 process"):
        micro_batch(6, 4, 1)


class Grid:
    """A data set whose every pixel holds its own code, so any crop, flip or rotation can be
    read back from the pixels."""

    size = 24

    def __init__(self, n: int = 3):
        self.samples = [Sample(f"g{i}", {"optical": Path(f"g{i}.tif")}) for i in range(n)]
        self.classes, self.colors, self.norm = ["a", "b"], [(0, 0, 0), (255, 255, 255)], Normalization()

    def __len__(self):
        return len(self.samples)

    def read(self, i, norm=None):
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        code = (yy * self.size + xx + i * self.size**2).astype(np.float32)
        return SceneArrays(
            f"g{i}",
            np.stack([code, code + 1]),
            code[None] * 2,
            np.ones(code.shape, bool),
            np.stack([code, -code]),
            code.astype(np.int64),
            code / 1e6,
        )


def test_crops_flips_and_rotations_are_the_same_on_every_layer_and_epochs_reshuffle():
    n = 3
    stream = SampleStream(DatasetSource(Grid(n)), 1, 4, 8, seed=5)
    orientations, orders = set(), []
    for epoch in range(24):
        order = []
        for g in range(epoch * n, (epoch + 1) * n):
            s = stream[g]
            code = s["optical"][0]
            assert np.array_equal(s["optical"][1], code + 1) and np.array_equal(s["sar"][0], 2 * code)
            assert np.array_equal(s["clear"][1], -code) and np.array_equal(s["labels"], code.astype(np.int64))
            np.testing.assert_allclose(s["cloud"], code / 1e6, rtol=1e-6)
            orientations.add((code[0, 1] - code[0, 0], code[1, 0] - code[0, 0]))
            order.append(int(code[0, 0]) // Grid.size**2)
        assert sorted(order) == list(range(n))  # every sample once per epoch
        orders.append(tuple(order))
    s = Grid.size
    assert orientations == {(1, s), (s, 1), (-1, s), (s, -1), (1, -s), (-s, 1), (-1, -s), (-s, -1)}  # all eight
    assert len(set(orders)) > 1  # reshuffled
    # The same item twice is the same sample; another seed draws others.
    assert all(np.array_equal(stream[7][k], stream[7][k]) for k in ("optical", "labels"))
    other = SampleStream(DatasetSource(Grid(n)), 1, 4, 8, seed=6)
    assert any(not np.array_equal(stream[g]["optical"], other[g]["optical"]) for g in range(6))


# --- torchrun: processes share the global batch ---------------------------------------

COMMON = dict(steps=6, batch=4, patch=32, save_every=3, val_scenes=2, val_size=32, deterministic=True, device="cpu")


def cli_args(**kw) -> list[str]:
    names = {"val_scenes": "val-samples"}
    args = []
    for k, v in kw.items():
        if k in ("val_size",):
            continue
        flag = "--" + names.get(k, k.replace("_", "-"))
        args += [flag] if v is True else [flag, str(v)]
    return args


def in_process(out, **kw):
    """One process, one thread (as each torchrun process here): float sums depend on the
    thread count, so only equal threads are compared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(TrainOptions(out=out, **{**COMMON, **kw}))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def torchrun(out, nproc=2, **kw) -> subprocess.Popen:
    opts = {**COMMON, **kw}
    opts.pop("val_size")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "--no-python",
        str(TDPCR_EDGE),
        "train",
        "--out",
        str(out),
        *cli_args(**opts),
    ]
    # val_size is not a CLI option: the CLI validates on 128-pixel scenes, so the in-process
    # references below pass val_size=128 where validation figures are compared.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def finish(proc: subprocess.Popen, timeout: int = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def max_param_diff(a: Path, b: Path) -> float:
    x, y = load_checkpoint(a), load_checkpoint(b)
    names = [n for n, _ in TDPCR(x.config).named_parameters()]
    return max(float((x.state_dict[n] - y.state_dict[n]).abs().max()) for n in names)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Phase 1, one process, --accumulate 2: the micro-batches two processes compute on."""
    out = tmp_path_factory.mktemp("ref") / "run"
    in_process(out, phase="1", accumulate=2, val_size=128)
    return out


def test_two_processes_end_with_the_parameters_of_one_process_accumulating(reference, tmp_path):
    code, _, err = finish(torchrun(tmp_path / "ddp", phase="1"))
    assert code == 0, err[-2000:]
    assert max_param_diff(reference / "model.pt", tmp_path / "ddp" / "model.pt") <= 1e-5
    # Phase 2 from the same phase-1 model: its frozen batch norms hold the same statistics.
    init = reference / "phase1.pt"
    in_process(tmp_path / "p2-one", phase="2", init=init, accumulate=2)
    code, _, err = finish(torchrun(tmp_path / "p2-ddp", phase="2", init=init))
    assert code == 0, err[-2000:]
    assert max_param_diff(tmp_path / "p2-one" / "model.pt", tmp_path / "p2-ddp" / "model.pt") <= 1e-5
    import json

    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["phases"]["1"]["val_curve"][-1]["step"] == 6


class Stop(Exception):
    pass


def test_a_one_process_checkpoint_resumes_on_two_processes(reference, tmp_path):
    def stop_at_4(phase, step, steps, loss):
        if step == 4:  # after the checkpoint of step 3
            raise Stop

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(Stop):
            train(TrainOptions(out=tmp_path / "run", phase="1", accumulate=2, **{**COMMON, "val_size": 128}), on_step=stop_at_4)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt").step == 3
    code, _, err = finish(torchrun(tmp_path / "run", phase="1"))
    assert code == 0, err[-2000:]
    assert load_checkpoint(tmp_path / "run" / "model.pt").step == 6
    assert max_param_diff(reference / "model.pt", tmp_path / "run" / "model.pt") <= 1e-5


def ranks_of(parent: int) -> dict[int, int]:
    """The training processes torchrun started: {rank: pid}."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = dict(kv.split("=", 1) for kv in (proc / "environ").read_text().split("\0") if "=" in kv)
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and "RANK" in env:
            found[int(env["RANK"])] = int(proc.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc (Linux)")
def test_a_killed_rank_stops_the_job_and_a_rerun_resumes(tmp_path):
    long = dict(steps=40, save_every=4)
    ref = tmp_path / "ref"
    in_process(ref, phase="1", accumulate=2, **long)
    out = tmp_path / "run"
    proc = torchrun(out, phase="1", **long)
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    ranks = ranks_of(proc.pid)
    assert proc.poll() is None and 1 in ranks, "the run ended before a rank could be killed"
    os.kill(ranks[1], signal.SIGKILL)
    code, _, err = finish(proc)
    assert code != 0
    # The surviving rank says one line (its collective failed, or torchrun stopped it), then
    # torchrun its own summary.
    ours = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(ours) == 1 and ours[0].startswith("error: rank 0 of 2:") and "rerun the same command to resume" in ours[0], err[-3000:]
    ckpt = load_checkpoint(out / "checkpoint.pt")  # intact: written atomically
    assert ckpt.step % 4 == 0 and 0 < ckpt.step < 40 and not (out / "model.pt").exists()
    code, _, err = finish(torchrun(out, phase="1", **long))
    assert code == 0, err[-2000:]
    assert max_param_diff(ref / "model.pt", out / "model.pt") <= 1e-5


# --- validation during training ------------------------------------------------------------


def test_validation_every_n_steps_keeps_the_best_and_draws_curves(tmp_path):
    import json

    train(
        TrainOptions(out=tmp_path / "run", steps=6, batch=2, patch=32, save_every=3, val_every=2, val_scenes=2, val_size=32, device="cpu")
    )
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for phase in ("1", "2"):
        curve = metrics["phases"][phase]["val_curve"]
        assert [c["step"] for c in curve] == [2, 4, 6]
        assert all(c["psnr"] is not None and c["psnr_thick"] is not None and c["miou"] is not None for c in curve)
        key = "psnr" if phase == "1" else "miou"
        best = metrics["phases"][phase]["best"]
        assert best[key] == max(c[key] for c in curve)
        assert load_checkpoint(tmp_path / "run" / f"best-phase{phase}.pt").step == best["step"]
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_on_the_data_sets_val_split(sen12, tmp_path):
    import json

    spec = f"sen12mscr:{sen12}?labels=dfc&split=train"
    train(TrainOptions(out=tmp_path / "run", data=spec, phase="1", steps=2, batch=2, patch=32, save_every=2, device="cpu", workers=2))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["validation"] == "1 samples of SEN12MS-CR val (1 patches)"  # the official val scene, never trained on
    val = metrics["phases"]["1"]["val"]
    assert val["scenes"] == 1 and val["model"]["miou"] > 0
    assert metrics["phases"]["1"]["val_curve"][0]["psnr_thick"] is None  # SEN12MS-CR has no cloud maps


# --- refusals ------------------------------------------------------------------------------


def test_bad_options_are_one_line_and_leave_the_checkpoint_alone(sen12, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    train(TrainOptions(out=out, phase="1", steps=2, batch=2, patch=32, save_every=2, val_scenes=1, val_size=32, device="cpu"))
    before = (out / "checkpoint.pt").read_bytes()
    base = ["train", "--out", out, "--phase", "1", "--steps", "4", "--batch", "2", "--patch", "32"]

    def refused(*extra, match):
        code, _, err = run_main([*base, *extra], capsys, monkeypatch)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and match in lines[0], err
        assert (out / "checkpoint.pt").read_bytes() == before

    if not torch.cuda.is_available():
        refused("--device", "cuda", match="sees no CUDA device; use --device cpu")
    refused("--device", "tpu", match="unknown --device 'tpu'")
    refused("--amp", "fp16", "--device", "cpu", match="--amp fp16 trains on CUDA only")
    monkeypatch.setattr(step_devices, "cpu_has_bf16", lambda: False)
    refused("--amp", "bf16", "--device", "cpu", match="neither AVX512-BF16 nor AMX")
    refused("--accumulate", "0", match="'--accumulate': must be at least 1")
    with monkeypatch.context() as env:  # what torchrun tells the second of two processes
        env.setenv("WORLD_SIZE", "2")
        env.setenv("RANK", "1")
        env.setenv("LOCAL_RANK", "1")
        refused("--batch", "3", match="--batch 3 does not split into 2 process(es) x --accumulate 1")
    broken = tmp_path / "broken"
    shutil.copytree(sen12, broken)
    (broken / "ROIs1970_fall_s1" / "s1_3" / "ROIs1970_fall_s1_3_p2.tif").unlink()
    refused(
        "--data",
        f"sen12mscr:{broken}?labels=dfc",
        match="ROIs1970_fall_s1_3_p2.tif: missing (sar of patch ROIs1970_fall_3_p2, split train)",
    )
    # Bad pixels found while a loader worker reads them: still the one line naming the file.
    bad_labels = tmp_path / "bad-labels"
    shutil.copytree(sen12, bad_labels)
    lc = bad_labels / "ROIs1970_fall_lc" / "lc_3" / "ROIs1970_fall_lc_3_p1.tif"
    with rasterio.open(lc) as src:
        data = src.read()
    data[0, 0, 0] = 42
    rewrite_raster(lc, data)
    refused(
        "--data",
        f"sen12mscr:{bad_labels}?labels=dfc",
        "--workers",
        "2",
        "--no-resume",
        match="lc_3_p1.tif: IGBP land-cover codes must be 1..17, found 42",
    )


def test_eval_of_a_data_set_without_labels_says_patches_and_warns_nothing(sen12, capsys, monkeypatch, recwarn):
    code, out, _ = run_main(["eval", "--data", f"sen12mscr:{sen12}"], capsys, monkeypatch)
    assert code == 0 and "2 patches in sen12mscr:" in " ".join(out.split())
    assert not [w for w in recwarn if "torchmetrics" in str(w.filename) or "compute" in str(w.message)]


# --- precision and devices ------------------------------------------------------------------


@pytest.mark.skipif(not step_devices.cpu_has_bf16(), reason="this CPU has neither AVX512-BF16 nor AMX")
def test_bf16_autocast_step_on_a_cpu_with_bf16(tmp_path):
    def losses(amp):
        m = train(
            TrainOptions(
                out=tmp_path / amp,
                phase="1",
                steps=10,
                batch=2,
                patch=32,
                save_every=10,
                val_scenes=1,
                val_size=32,
                device="cpu",
                amp=amp,
                deterministic=True,
            )
        )
        return [v for _, v in m["phases"]["1"]["loss"]]

    fp32, bf16 = losses("off"), losses("bf16")
    assert bf16 and all(np.isfinite(v) for v in bf16)
    # BF16 arithmetic rounds differently from FP32: equal losses would mean autocast never ran.
    assert bf16 != fp32
    assert abs(bf16[-1] - fp32[-1]) < 0.25 * abs(fp32[-1])


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_training_steps_on_cuda(tmp_path, amp):
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no BF16")
    metrics = train(
        TrainOptions(
            out=tmp_path / "run",
            phase="both",
            steps=10,
            batch=4,
            patch=64,
            save_every=10,
            val_scenes=2,
            val_size=64,
            device="cuda",
            amp=amp,
        )
    )
    assert metrics["device"].startswith("cuda")
    assert all(np.isfinite(v) for ph in ("1", "2") for _, v in metrics["phases"][ph]["loss"])


@pytest.mark.gpu
@cuda
def test_quantisation_aware_training_on_cuda(tmp_path):
    metrics = train(
        TrainOptions(
            out=tmp_path / "run", phase="both", steps=8, batch=4, patch=64, save_every=8, val_scenes=2, val_size=64, device="cuda", qat=True
        )
    )
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt.qat_ranges and all(np.isfinite(v) and v > 0 for v in ckpt.qat_ranges.values())
    assert metrics["device"].startswith("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="a DDP step over NCCL needs two GPUs")
def test_ddp_over_nccl(tmp_path):
    code, _, err = finish(torchrun(tmp_path / "run", phase="1", device="cuda", steps=4, save_every=2))
    assert code == 0, err[-2000:]
    assert load_checkpoint(tmp_path / "run" / "model.pt").step == 4
