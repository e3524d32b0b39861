import json

import pytest
import torch

from tdpcr_edge.errors import CheckpointError, ConfigError
from tdpcr_edge.train import TrainOptions, load_checkpoint, train
from tdpcr_edge.train.losses import prompt_targets


def small(out, **kw):
    base = dict(out=out, steps=6, batch=2, patch=32, save_every=3, val_scenes=2, val_size=32)
    base.update(kw)
    return TrainOptions(**base)


def test_two_phases_write_run_folder(tmp_path):
    metrics = train(small(tmp_path / "run"))
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "run" / "model.pt").exists()
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(on_disk["phases"]) == {"1", "2"}
    p1, p2 = metrics["phases"]["1"], metrics["phases"]["2"]
    assert p2["trainable_params"] < p1["trainable_params"] / 20
    assert {"psnr", "ssim", "sam", "mae", "miou", "oa"} <= set(p1["val"]["model"])
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt.phase == 2 and ckpt.step == 6 and ckpt.training == {}
    assert ckpt.classes[0] == "water" and len(ckpt.colors) == 6


def test_phase_two_touches_only_head_and_adapters(tmp_path):
    train(small(tmp_path / "p1", phase="1"))
    before = load_checkpoint(tmp_path / "p1" / "model.pt")
    train(small(tmp_path / "p2", phase="2", init=tmp_path / "p1" / "model.pt"))
    after = load_checkpoint(tmp_path / "p2" / "model.pt")
    changed = {k for k in before.state_dict if not torch.equal(before.state_dict[k], after.state_dict[k])}
    assert changed, "phase 2 trained nothing"
    # Frozen parts, batch-norm running statistics included, are bit-identical.
    assert all(k.startswith(("segmentation_head.", "adapters.")) for k in changed), sorted(changed)[:5]


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    train(small(tmp_path / "straight", phase="1"))

    class Stop(Exception):
        pass

    def interrupt(phase, step, steps, loss):
        if step == 4:  # after the checkpoint at step 3, before the one at 6
            raise Stop

    with pytest.raises(Stop):
        train(small(tmp_path / "resumed", phase="1"), on_step=interrupt)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt").step == 3
    train(small(tmp_path / "resumed", phase="1"))
    a = load_checkpoint(tmp_path / "straight" / "model.pt").state_dict
    b = load_checkpoint(tmp_path / "resumed" / "model.pt").state_dict
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_resume_refuses_another_config(tmp_path):
    train(small(tmp_path / "run", phase="1", steps=3))
    with pytest.raises(CheckpointError, match="use another --out or --no-resume"):
        train(small(tmp_path / "run", phase="1", steps=3, fusion="concat"))


def test_phase_two_alone_needs_phase_one(tmp_path):
    with pytest.raises(CheckpointError, match="phase 2 needs a phase-1 checkpoint"):
        train(small(tmp_path / "run", phase="2"))
    with pytest.raises(ConfigError, match="unknown --phase"):
        train(small(tmp_path / "run", phase="3"))


def test_train_from_scene_folder(tmp_path, scene_dir):
    metrics = train(small(tmp_path / "run", data=str(scene_dir), steps=2, phase="both"))
    assert "val" not in metrics["phases"]["1"]  # no held-out stream for a folder
    assert (tmp_path / "run" / "model.pt").exists()


def test_prompt_targets_quantise_thickness():
    cloud = torch.tensor([[[0.0, 0.04, 0.06, 0.5, 0.99, 1.0]]]).reshape(1, 1, 6)
    t = prompt_targets(cloud, prompts=4, size=(1, 6))
    assert t.tolist() == [[[0, 0, 1, 2, 3, 3]]]
