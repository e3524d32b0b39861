import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from tdpcr_edge.model import build_model
from tdpcr_edge.model.arch.dsen2cr import DSen2CR
from tdpcr_edge.model.arch.uncrtaints import UnCRtainTS
from tdpcr_edge.model.registry import ModelConfig, get_arch

# Published parameter counts (13 optical + 2 SAR bands in) and the tolerance we allow.
PAPER_PARAMS = {"dsen2cr": (18_947_341, 0.005), "uncrtaints": (520_218, 0.01)}
CLASSES = {"dsen2cr": DSen2CR, "uncrtaints": UnCRtainTS}
ARCHS = list(CLASSES)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def make(arch: str, size: str) -> nn.Module:
    config = get_arch(arch).config(size)
    assert isinstance(config, ModelConfig)
    torch.manual_seed(0)
    return CLASSES[arch](config)


def inputs(n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 13, h, w), torch.rand(n, 2, h, w)


@pytest.mark.parametrize("arch", ARCHS)
def test_full_size_matches_paper(arch):
    m = make(arch, "full").eval()
    expected, tolerance = PAPER_PARAMS[arch]
    assert abs(n_params(m) - expected) <= tolerance * expected, n_params(m)
    with torch.no_grad():
        out = m(*inputs(1, 16, 16))
    assert out["reconstruction"].shape == (1, 13, 16, 16)
    if arch == "uncrtaints":
        assert out["uncertainty"].shape == (1, 13, 16, 16)


@pytest.mark.parametrize("arch", ARCHS)
def test_small_forward_range_and_gradients(arch):
    m = make(arch, "small").train()
    assert n_params(m) < n_params(make(arch, "full")) / 10
    optical, sar = inputs(2, 24, 20)
    # Values at the edges of [0, 1] so that an unclamped correction would leave the range.
    optical[:, :, :4] = 0.0
    optical[:, :, -4:] = 1.0
    before = optical.clone()
    out = m(optical, sar)
    assert torch.equal(optical, before)
    rec = out["reconstruction"]
    assert rec.shape == (2, 13, 24, 20)
    # Inference is clamped to [0, 1]; UnCRtainTS learns on its unclamped mean (a clamp would
    # stop the likelihood's gradient at the bounds).
    with torch.no_grad():
        used = m.eval()(optical, sar)["reconstruction"]
    m.train()
    assert float(used.min()) >= 0.0 and float(used.max()) <= 1.0
    if arch != "uncrtaints":
        assert float(rec.detach().min()) >= 0.0 and float(rec.detach().max()) <= 1.0
    expected = {"reconstruction", "uncertainty"} if arch == "uncrtaints" else {"reconstruction"}
    assert set(out) == expected == set(get_arch(arch).outputs)
    loss = rec.mean()
    if arch == "uncrtaints":
        var = out["uncertainty"]
        assert var.shape == (2, 13, 24, 20)
        assert float(var.detach().min()) > 0.0
        loss = loss + var.mean()
    loss.backward()
    first = next(p for p in m.parameters() if p.dim() == 4)
    assert first.grad is not None and float(first.grad.abs().sum()) > 0
    assert first.shape[1] == 15  # the first layer reads optical and SAR together


@pytest.mark.parametrize("arch", ARCHS)
def test_long_skip_returns_the_input_when_the_correction_is_zero(arch):
    m = make(arch, "small").eval()
    last = m.tail if arch == "dsen2cr" else m.head
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        optical, sar = inputs(1, 8, 8)
        out = m(optical, sar)
    torch.testing.assert_close(out["reconstruction"], optical)
    if arch == "uncrtaints":
        # softplus(0) + epsilon: the variance head is the second half of the last layer.
        torch.testing.assert_close(out["uncertainty"], torch.full_like(optical, float(np.log(2.0)) + 1e-3))


def test_uncrtaints_reads_sar_first():
    m = make("uncrtaints", "small").eval()
    stem = m.stem[0]
    with torch.no_grad():
        stem.weight.zero_()
        stem.weight[:, :2] = 1.0  # only the first two input channels matter
        optical, sar = inputs(1, 8, 8)
        a = m(optical, sar)["uncertainty"]
        b = m(torch.rand_like(optical), sar)["uncertainty"]
        c = m(optical, torch.rand_like(sar))["uncertainty"]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("arch", ARCHS)
def test_predict_any_size(arch):
    m = make(arch, "small").eval()
    out = m.predict(*inputs(1, 30, 30))
    assert set(out) == set(get_arch(arch).outputs)
    for v in out.values():
        assert v.shape == (1, 13, 30, 30)


@pytest.mark.parametrize("arch", ARCHS)
def test_build_model_goes_through_the_registry(arch):
    m = build_model("small", arch=arch)
    assert type(m) is CLASSES[arch]
    assert m.config.arch == arch and m.config.widths == get_arch(arch).config("small").widths


class Outputs(nn.Module):
    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, optical: torch.Tensor, sar: torch.Tensor):
        out = self.model(optical, sar)
        return tuple(out[k] for k in self.names)


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_export_matches_torch(arch):
    ort = pytest.importorskip("onnxruntime")
    m = make(arch, "small").eval()
    if arch == "uncrtaints":
        # Non-trivial batch-norm statistics, so the exported graph must carry them.
        with torch.no_grad():
            for bn in (b for b in m.modules() if isinstance(b, nn.BatchNorm2d)):
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 1.5)
    names = get_arch(arch).outputs
    wrapped = Outputs(m, names).eval()
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    dims = {0: batch, 2: height, 3: width}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped,
            inputs(2, 16, 16),  # batch 2: torch.export specialises dimensions that are 1
            dynamo=True,
            opset_version=18,
            input_names=["optical", "sar"],
            output_names=list(names),
            dynamic_shapes={"optical": dims, "sar": dims},
            verbose=False,
        )
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    optical, sar = inputs(1, 32, 32)
    got = session.run(None, {"optical": optical.numpy(), "sar": sar.numpy()})
    with torch.no_grad():
        want = wrapped(optical, sar)
    assert len(got) == len(want) == len(names)
    for g, w in zip(got, want):
        assert g.shape == tuple(w.shape) == (1, 13, 32, 32)
        np.testing.assert_allclose(g, w.numpy(), rtol=0, atol=1e-4)
