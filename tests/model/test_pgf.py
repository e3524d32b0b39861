import pytest
import torch

from tdpcr_edge.model import ConcatFusion, PromptGuidedFusion, pgf_fuse
from tdpcr_edge.model.pgf import pgf_fuse_op


def loop_reference(o, s, p, e, g, bw, bb):
    """PGF's per-pixel equations written out one pixel at a time, the 3 x 3 spatial bias
    included (zero padding)."""
    n, c, h, w = o.shape
    fused = torch.empty_like(o)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                b = float(bb[0])
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        if 0 <= y + dy < h and 0 <= x + dx < w:
                            b += float((bw[0, :, dy + 1, dx + 1] * p[i, :, y + dy, x + dx]).sum())
                q = (p[i, :, y, x][:, None] * e).sum(0)  # C
                a = torch.sigmoid(g[i] * q + b)
                fused[i, :, y, x] = o[i, :, y, x] + a * (s[i, :, y, x] - o[i, :, y, x])
    return fused


@pytest.mark.parametrize("n,c,k,h,w", [(1, 3, 4, 5, 7), (2, 13, 6, 3, 4)])
def test_pgf_fuse_matches_per_pixel_equations(n, c, k, h, w):
    g = torch.Generator().manual_seed(0)
    o, s = torch.randn(n, c, h, w, generator=g), torch.randn(n, c, h, w, generator=g)
    p = torch.softmax(torch.randn(n, k, h, w, generator=g), 1)
    e, ctx = torch.randn(k, c, generator=g), torch.rand(n, c, generator=g)
    bw, bb = torch.randn(1, k, 3, 3, generator=g), torch.randn(1, generator=g)
    fused, reliance = pgf_fuse(o, s, p, e, ctx, bw, bb)
    torch.testing.assert_close(fused, loop_reference(o, s, p, e, ctx, bw, bb), rtol=1e-5, atol=1e-5)
    assert reliance.shape == (n, 1, h, w) and reliance.min() >= 0 and reliance.max() <= 1
    op_fused, op_reliance = pgf_fuse_op(o, s, p, e, ctx, bw, bb)
    torch.testing.assert_close(op_fused, fused, rtol=0, atol=0)
    torch.testing.assert_close(op_reliance, reliance, rtol=0, atol=0)


def test_gate_closed_keeps_optical_and_open_takes_sar():
    o, s = torch.rand(1, 4, 3, 3), torch.rand(1, 4, 3, 3)
    p = torch.full((1, 2, 3, 3), 0.5)
    e, ctx = torch.zeros(2, 4), torch.ones(1, 4)
    no_w = torch.zeros(1, 2, 3, 3)
    closed, rel_closed = pgf_fuse(o, s, p, e, ctx, no_w, torch.tensor([-40.0]))
    opened, rel_opened = pgf_fuse(o, s, p, e, ctx, no_w, torch.tensor([40.0]))
    torch.testing.assert_close(closed, o)
    torch.testing.assert_close(opened, s)
    assert float(rel_closed.max()) < 1e-6 and float(rel_opened.min()) > 1 - 1e-6


def test_pgf_module_outputs():
    m = PromptGuidedFusion(16, prompts=5)
    out = m(torch.randn(2, 16, 9, 11), torch.randn(2, 16, 9, 11))
    assert out["fused"].shape == (2, 16, 9, 11)
    assert out["prompt_logits"].shape == (2, 5, 9, 11)
    assert out["reliance"].shape == (2, 1, 9, 11)
    rel = out["reliance"].detach()
    assert 0 <= float(rel.min()) and float(rel.max()) <= 1


def test_concat_fusion_has_no_prompt():
    out = ConcatFusion(8)(torch.randn(1, 8, 4, 4), torch.randn(1, 8, 4, 4))
    assert set(out) == {"fused"} and out["fused"].shape == (1, 8, 4, 4)
