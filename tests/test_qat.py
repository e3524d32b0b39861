import pytest
import torch
from torch import nn

from tdpcr_edge.model import build_model
from tdpcr_edge.train import load_checkpoint, train
from tdpcr_edge.train.qat import disable_fake_quant, enable_fake_quant, fake_quant_ranges

from tests.test_train import small


def inputs(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 13, size, size, generator=g), torch.rand(n, 2, size, size, generator=g)


def test_fake_quant_rounds_every_convolution_and_comes_off_cleanly():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    o, s = inputs()
    with torch.no_grad():
        ref = model(o, s)["reconstruction"]
        convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        assert enable_fake_quant(model) == convs
        assert enable_fake_quant(model) == 0  # idempotent
        q = model(o, s)["reconstruction"]
        disable_fake_quant(model)
        back = model(o, s)["reconstruction"]
    diff = (q - ref).abs().max().item()
    assert 0 < diff < 0.5, diff
    torch.testing.assert_close(back, ref, rtol=0, atol=0)
    assert not any(hasattr(m, "act_absmax") for m in model.modules())


def test_weight_grid_survives_batch_norm_folding():
    """The export folds batch norm (a per-output-channel scale) into the weights before
    rounding them; per-channel symmetric rounding commutes with that scale."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    folded = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    scale = torch.tensor([0.3, 2.0, 7.5])
    with torch.no_grad():
        folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    for c in (conv, folded):
        enable_fake_quant(c)
    x = torch.randn(2, 4, 8, 8)
    folded.act_absmax.fill_(0)
    with torch.no_grad():
        a, b = conv(x), folded(x)  # both take the same range from the same input
    torch.testing.assert_close(b, a * scale.view(1, -1, 1, 1), rtol=1e-5, atol=1e-5)


def test_ranges_follow_training_and_freeze_in_eval():
    conv = nn.Conv2d(2, 2, 1)
    enable_fake_quant(conv, momentum=0.5)
    conv.train()
    conv(torch.full((1, 2, 4, 4), 2.0))
    assert conv.act_absmax.item() == pytest.approx(2.0)  # the first batch sets it
    conv(torch.full((1, 2, 4, 4), 4.0))
    assert conv.act_absmax.item() == pytest.approx(3.0)  # then a moving average
    conv.eval()
    out = conv(torch.full((1, 2, 4, 4), 40.0))
    assert conv.act_absmax.item() == pytest.approx(3.0)
    # Clipped to the frozen range: the input saturates at 3.
    torch.testing.assert_close(out, conv._conv_forward(torch.full((1, 2, 4, 4), 3.0), conv.weight, conv.bias), atol=0.05, rtol=0)


def test_qat_run_resumes_identically_and_loads_as_a_plain_model(tmp_path):
    train(small(tmp_path / "straight", phase="1", qat=True))

    class Stop(Exception):
        pass

    def interrupt(phase, step, steps, loss):
        if step == 4:
            raise Stop

    with pytest.raises(Stop):
        train(small(tmp_path / "resumed", phase="1", qat=True), on_step=interrupt)
    ckpt = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert ckpt.qat_ranges, "the ranges must survive a restart"
    train(small(tmp_path / "resumed", phase="1", qat=True))
    a = load_checkpoint(tmp_path / "straight" / "model.pt")
    b = load_checkpoint(tmp_path / "resumed" / "model.pt")
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], rtol=0, atol=0, msg=k)
    model = a.build()  # no extra keys: the deployed model is a plain one
    assert a.qat and fake_quant_ranges(model) == {}


def test_qat_refuses_to_resume_a_plain_run(tmp_path):
    from tdpcr_edge.errors import CheckpointError

    train(small(tmp_path / "run", phase="1", steps=3))
    with pytest.raises(CheckpointError, match="--qat"):
        train(small(tmp_path / "run", phase="1", steps=6, qat=True))
