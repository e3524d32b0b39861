import pytest
import torch

from tdpcr_edge.contract import default_checkpoint_path
from tdpcr_edge.errors import CheckpointError
from tdpcr_edge.train.checkpoint import load_checkpoint


def test_round_trip(random_checkpoint):
    ckpt = load_checkpoint(random_checkpoint)
    model = ckpt.build()
    assert ckpt.config.name == "tiny" and ckpt.normalization.optical_scale == 10000
    for k, v in model.state_dict().items():
        assert torch.equal(v, ckpt.state_dict[k])


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_corrupt(tmp_path, random_checkpoint):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(random_checkpoint.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r"bad\.pt: not a readable checkpoint"):
        load_checkpoint(bad)


def test_foreign_torch_file(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a tdpcr-edge checkpoint"):
        load_checkpoint(other)


def test_weights_not_matching_config(tmp_path, random_checkpoint):
    payload = torch.load(random_checkpoint, weights_only=True)
    payload["config"]["widths"] = [8, 16, 32]
    path = tmp_path / "mismatch.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="weights do not fit config"):
        load_checkpoint(path).build()


def test_shipped_checkpoint_is_small_and_tiny():
    path = default_checkpoint_path()
    assert path.stat().st_size <= 5 * 1024 * 1024
    ckpt = load_checkpoint(path)
    assert ckpt.config.name == "tiny" and ckpt.phase == 2 and ckpt.training == {}
    assert sum(v.numel() for k, v in ckpt.state_dict.items() if "running" not in k and "num_batches" not in k) <= 1_000_000
