import pytest
import torch
from torch import nn

from tdpcr_edge.model import build_model
from tdpcr_edge.train import load_checkpoint, train
from tdpcr_edge.train.qat import (
    clip_activations,
    disable_fake_quant,
    enable_fake_quant,
    fake_quant_ranges,
    learn_ranges,
    load_fake_quant_ranges,
    range_parameters,
    set_rounding,
)
from tests.train.test_train import small


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
    assert not any("forward" in m.__dict__ for m in model.modules()) and fake_quant_ranges(model) == {}


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
    with torch.no_grad():
        a, b = conv(x), folded(x)  # both take the same step from the same input
    torch.testing.assert_close(b, a * scale.view(1, -1, 1, 1), rtol=1e-5, atol=1e-5)


def test_ranges_follow_the_batch_maximum_then_learn_and_freeze_in_eval():
    conv = nn.Conv2d(2, 2, 1)
    enable_fake_quant(conv, momentum=0.5)
    conv(torch.full((1, 2, 4, 4), 2.0))
    assert fake_quant_ranges(conv)[""] == pytest.approx(2.0)  # the first batch sets it
    conv(torch.full((1, 2, 4, 4), 4.0))
    assert fake_quant_ranges(conv)[""] == pytest.approx(3.0)  # then a moving average
    set_rounding(conv, False)
    conv(torch.full((1, 2, 4, 4), 40.0))  # an FP32 forward of the same step follows nothing
    set_rounding(conv, True)
    assert fake_quant_ranges(conv)[""] == pytest.approx(3.0)
    learn_ranges(conv, [conv.weight])  # from now on only gradients move it
    conv(torch.full((1, 2, 4, 4), 40.0)).sum().backward()
    (step,) = [p for p in conv.forward.__dict__.values() if isinstance(p, nn.Parameter)]
    assert fake_quant_ranges(conv)[""] == pytest.approx(3.0) and step.grad is not None and step.grad.item() != 0
    learn_ranges(conv, [])
    assert not step.requires_grad


def _l1_error(conv, x, target) -> torch.Tensor:
    return (conv(x) - target).abs().mean()


@pytest.mark.parametrize("start", [0.05, 200.0])
def test_the_step_learns_the_trade_between_clipping_and_rounding(start):
    """Heavy-tailed input (exponential bulk, a few values up to 30), L1 error of the output
    as the reconstruction loss is: the best range clips the largest values. From a range far
    too small (everything clipped) or far too large (a few rounding levels), the learned step
    lands on the best range of a brute-force search."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 1)
    enable_fake_quant(conv)
    x = torch.distributions.Exponential(torch.tensor(3.0)).sample((2, 4, 16, 16))
    x.view(-1)[:8] = torch.linspace(5, 30, 8)
    with torch.no_grad():
        target = conv._conv_forward(x, conv.weight, conv.bias)
    grid = torch.logspace(-0.3, 1.8, 80).tolist()
    errors = []
    for r in grid:
        load_fake_quant_ranges(conv, {"": r})
        with torch.no_grad():
            errors.append(_l1_error(conv, x, target).item())
    best = min(range(len(grid)), key=errors.__getitem__)
    assert grid[best] < 0.9 * 30  # the search itself prefers clipping here

    load_fake_quant_ranges(conv, {"": start})
    learn_ranges(conv, [conv.weight])
    opt = torch.optim.Adam(range_parameters(conv, [conv.weight]), lr=0.05)
    for _ in range(300):
        loss = _l1_error(conv, x, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fake_quant_ranges(conv)[""] == pytest.approx(grid[best], rel=0.1)
    with torch.no_grad():
        assert _l1_error(conv, x, target).item() < 1.02 * errors[best]


def test_a_frozen_step_clips_at_its_range():
    conv = nn.Conv2d(2, 2, 1).eval()
    enable_fake_quant(conv)
    load_fake_quant_ranges(conv, {"": 3.0})
    with torch.no_grad():
        out = conv(torch.full((1, 2, 4, 4), 40.0))
        conv(torch.full((1, 2, 4, 4), 400.0))  # no training step: the range stays
    assert fake_quant_ranges(conv)[""] == pytest.approx(3.0)
    torch.testing.assert_close(out, conv._conv_forward(torch.full((1, 2, 4, 4), 3.0), conv.weight, conv.bias), atol=0.05, rtol=0)


def test_each_phase_learns_only_its_own_ranges_in_its_second_half(tmp_path, monkeypatch):
    """Phase 1's ranges learn from its 4th of 6 steps on, phase 2's likewise; phase 2 leaves
    phase 1's exactly where they were (phase1.pt is phase 1's model, kept for --init)."""
    import importlib

    from tdpcr_edge.train.qat import _quantisers

    trainer = importlib.import_module("tdpcr_edge.train.trainer")  # the package's `train` is the function

    models, seen = [], []
    real = trainer.learn_ranges
    monkeypatch.setattr(trainer, "learn_ranges", lambda model, params: models.append(model) or real(model, params))

    def on_step(phase, step, steps, loss):
        seen.append((phase, step, {name for name, _, fq in _quantisers(models[-1]) if fq.learning}))

    train(small(tmp_path / "both", phase="both", qat=True), on_step=on_step)
    phase2 = ("segmentation_head.", "adapters.")
    for phase, step, learning in seen:
        if step <= 3:
            assert learning == set(), (phase, step)
        elif phase == 1:
            assert learning and not any(n.startswith(phase2) for n in learning)
        else:
            assert learning and all(n.startswith(phase2) for n in learning)
    p1 = load_checkpoint(tmp_path / "both" / "phase1.pt").qat_ranges  # as phase 1 ended
    both = load_checkpoint(tmp_path / "both" / "model.pt").qat_ranges
    first = {k: v for k, v in p1.items() if not k.startswith(phase2)}
    assert first and all(both[k] == v for k, v in first.items())
    assert any(both[k] != v for k, v in p1.items() if k.startswith(phase2))


def test_a_qat_checkpoint_builds_with_its_clips_and_exports_them():
    """The clip is part of what a --qat run trained: the built model equals the simulation
    with rounding off, without the clips it computes something else, and the FP32 and FP16
    graphs carry them. On the shipped (--qat) model, at the tile the export tests trace."""
    import numpy as np
    import onnxruntime as ort

    from tdpcr_edge.export.fp16 import to_fp16
    from tdpcr_edge.export.onnx_graph import export_onnx

    ckpt = load_checkpoint()
    assert ckpt.qat
    o, s = inputs(n=1, size=128)
    o = o * 4  # beyond what training saw: some convolution inputs exceed their ranges
    built = ckpt.build()

    def unclipped():
        model = ckpt.build()
        for m in model.modules():
            m._forward_pre_hooks.clear()
        return model

    plain, sim = unclipped(), unclipped()
    enable_fake_quant(sim)
    load_fake_quant_ranges(sim, ckpt.qat_ranges)
    set_rounding(sim, False)
    with torch.no_grad():
        a, b, c = built(o, s)["reconstruction"], sim(o, s)["reconstruction"], plain(o, s)["reconstruction"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # clamp against min/max: an ulp apart
    assert (a - c).abs().max() > 1e-3  # the clips do act on these inputs
    assert built.activation_clips == ckpt.qat_ranges
    proto = export_onnx(built, tile=128)
    producers = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    unclipped_convs = [n.name for n in convs if producers.get(n.input[0]) is None or producers[n.input[0]].op_type != "Clip"]
    assert len(unclipped_convs) == len(ckpt.config.widths), unclipped_convs  # PGF's spatial bias only
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["reconstruction"], {"optical": o.numpy(), "sar": s.numpy()})[0]
    assert np.abs(onnx_out - a.numpy()).max() < 1e-4
    # FP16 keeps them too (the exporter folds ReLU and clip into Clip nodes sharing bounds
    # with the FP32 reconstruction clamp, which the FP16 pass must untangle).
    half = to_fp16(proto)
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    half_out = session.run(["reconstruction"], {"optical": o.numpy(), "sar": s.numpy()})[0]
    assert np.abs(half_out - a.numpy()).max() < 2e-2


def test_clip_activations_clips_each_named_input():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    nn.init.ones_(conv.weight)
    clip_activations(conv, {"": 2.5})
    out = conv(torch.tensor([-9.0, -1.0, 1.0, 9.0]).view(1, 1, 2, 2))
    assert out.flatten().tolist() == [-2.5, -1.0, 1.0, 2.5]


def test_consistency_loss_is_zero_for_agreement_and_symmetric():
    from tdpcr_edge.train.losses import consistency_loss

    a = torch.randn(2, 6, 4, 4)
    b = a + torch.randn(2, 6, 4, 4)
    assert consistency_loss(a, a).item() == pytest.approx(0.0, abs=1e-7)
    assert consistency_loss(a, a + 3.0).item() == pytest.approx(0.0, abs=1e-6)  # same probabilities
    assert consistency_loss(a, b).item() > 0.01
    assert consistency_loss(a, b).item() == pytest.approx(consistency_loss(b, a).item(), rel=1e-6)


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
    assert a.qat_ranges == b.qat_ranges  # the learned steps too, bit for bit
    for k in a.state_dict:
        torch.testing.assert_close(a.state_dict[k], b.state_dict[k], rtol=0, atol=0, msg=k)
    model = a.build()  # no extra keys: the deployed model is a plain one
    assert a.qat and fake_quant_ranges(model) == {}


def test_qat_refuses_to_resume_a_plain_run(tmp_path):
    from tdpcr_edge.errors import CheckpointError

    train(small(tmp_path / "run", phase="1", steps=3))
    with pytest.raises(CheckpointError, match="--qat"):
        train(small(tmp_path / "run", phase="1", steps=6, qat=True))
