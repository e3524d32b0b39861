import pytest
import torch

from tdpcr_edge.errors import ConfigError
from tdpcr_edge.model import build_model, get_config
from tdpcr_edge.model.profile import module_costs


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_config_sizes():
    assert n_params(build_model("tiny")) <= 1_000_000
    # "base": about 15% of the ~20 M parameters of the heavy cloud-removal baselines.
    assert 2_500_000 <= n_params(build_model("base")) <= 5_000_000


@pytest.mark.parametrize("fusion", ["pgf", "concat"])
def test_forward_shapes(fusion):
    m = build_model("tiny", fusion=fusion).eval()
    out = m(torch.rand(2, 13, 32, 48), torch.rand(2, 2, 32, 48))
    assert out["reconstruction"].shape == (2, 13, 32, 48)
    assert out["segmentation"].shape == (2, 6, 32, 48)
    rec = out["reconstruction"].detach()
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1
    assert ("reliance" in out) == (fusion == "pgf")
    assert len(out["prompt_logits"]) == (3 if fusion == "pgf" else 0)


@pytest.mark.parametrize("h,w", [(1, 1), (5, 7), (33, 30)])
def test_predict_any_size(h, w):
    m = build_model("tiny").eval()
    out = m.predict(torch.rand(1, 13, h, w), torch.rand(1, 2, h, w))
    assert out["reconstruction"].shape == (1, 13, h, w)
    assert out["reliance"].shape == (1, 1, h, w)


def test_phase_parameters_partition_the_model():
    m = build_model("tiny")
    p1 = {id(p) for p in m.phase_parameters(1)}
    p2 = {id(p) for p in m.phase_parameters(2)}
    assert p1 and p2 and not p1 & p2
    assert p1 | p2 == {id(p) for p in m.parameters()}
    # Parameter-efficient: phase 2 trains a small share of the model.
    assert sum(p.numel() for p in m.phase_parameters(2)) < 0.05 * n_params(m)
    with pytest.raises(ConfigError):
        m.phase_parameters(3)


def test_adapters_start_silent_and_never_touch_reconstruction():
    torch.manual_seed(0)
    m = build_model("tiny").eval()
    o, s = torch.rand(1, 13, 16, 16), torch.rand(1, 2, 16, 16)
    before = m(o, s)
    assert float(m.adapters[1](torch.randn(1, 32, 8, 8), (16, 16)).detach().abs().max()) == 0
    with torch.no_grad():
        for p in m.phase_parameters(2):
            p.add_(torch.randn_like(p))
    after = m(o, s)
    torch.testing.assert_close(after["reconstruction"], before["reconstruction"], rtol=0, atol=0)
    assert not torch.equal(after["segmentation"], before["segmentation"])


def test_unknown_config_and_fusion():
    with pytest.raises(ConfigError, match="unknown config .huge. of tdpcr"):
        get_config("huge")
    with pytest.raises(ConfigError, match="unknown fusion"):
        get_config("tiny", fusion="sum")


def test_module_costs_add_up():
    rows = module_costs(build_model("tiny"), tile=64)
    total = rows[-1]
    assert total.name == "total" and total.params == n_params(build_model("tiny"))
    assert sum(r.params for r in rows[:-1]) == total.params
    assert all(r.macs > 0 for r in rows)
    # Convolution MACs scale with the pixel count.
    assert module_costs(build_model("tiny"), tile=128)[-1].macs == pytest.approx(4 * total.macs, rel=0.02)
