import contextlib
import io
import logging
import os
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch.nn import functional as F

from tdpcr_edge.backends.targets import load_profile
from tdpcr_edge.backends.trt.check import check_graph
from tdpcr_edge.errors import ConfigError
from tdpcr_edge.model.arch import glfcr
from tdpcr_edge.model.registry import get_arch

PUBLISHED_PARAMETERS = 14_827_373  # Xu et al. 2022, 13 optical and 2 SAR bands
EXPORT_TILE = 32


def build(size: str):
    torch.manual_seed(0)
    arch = get_arch("glfcr")
    return arch.build(arch.config(size)).eval()


def inputs(n: int, h: int, w: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 13, h, w, generator=g), torch.rand(n, 2, h, w, generator=g)


@pytest.fixture(scope="module")
def small():
    return build("small")


def test_full_config_has_the_published_size_and_runs():
    model = build("full")
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - PUBLISHED_PARAMETERS) <= 0.02 * PUBLISHED_PARAMETERS, n
    assert model.config.multiple == 16
    with torch.no_grad():
        out = model(*inputs(1, 16, 16))
    assert out["reconstruction"].shape == (1, 13, 16, 16)


def test_small_forward_shapes_and_range(small):
    o, s = inputs(2, 32, 48)
    with torch.no_grad():
        out = small(o, s)
    assert set(out) == {"reconstruction"}
    rec = out["reconstruction"]
    assert rec.shape == (2, 13, 32, 48) and rec.dtype == torch.float32
    assert float(rec.min()) >= 0 and float(rec.max()) <= 1


def test_gradients_reach_both_stems():
    model = build("small").train()
    o, s = inputs(1, 32, 32)
    model(o, s)["reconstruction"].sum().backward()
    for stem in (model.stem_optical, model.stem_sar):
        assert stem.weight.grad is not None and float(stem.weight.grad.abs().sum()) > 0


def test_predict_pads_to_the_multiple(small):
    out = small.predict(*inputs(1, 40, 40))
    assert out["reconstruction"].shape == (1, 13, 40, 40)


def test_export_friendly_helpers_match_torch():
    x = torch.rand(2, 3, 16, 24)
    assert torch.equal(glfcr._unshuffle(x), F.pixel_unshuffle(x, 2))
    y = torch.rand(2, 12, 5, 6)
    assert torch.equal(glfcr._shuffle(y), F.pixel_shuffle(y, 2))
    windows = glfcr._windows(x, 8)
    assert windows.shape == (6 * 2, 64, 3)
    # window-major: window 4 (second row, second column) of batch item 1
    assert torch.equal(windows[4 * 2 + 1], x[1, :, 8:16, 8:16].reshape(3, 64).T)
    assert torch.equal(glfcr._merge(windows, 8, 2, 16, 24), x)


def _swin_mask(h: int, w: int, window: int, shift: int) -> torch.Tensor:
    """The shifted-window mask as Swin's paper describes it: label the nine regions of the
    rolled map by slice assignment, then compare labels within each window."""
    img = torch.zeros(h, w)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, hs in enumerate(spans):
        for j, ws in enumerate(spans):
            img[hs, ws] = 3 * i + j
    labels = img.reshape(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    return torch.where(labels[:, None, :] != labels[:, :, None], glfcr.MASKED, 0.0)


@pytest.mark.parametrize("h,w", [(8, 8), (16, 16), (16, 32), (32, 24)])
def test_shift_mask_matches_swin(h, w):
    assert torch.equal(glfcr.shift_mask(h, w, 8, 4)[:, 0], _swin_mask(h, w, 8, 4))


def test_shift_mask_repeats_per_batch_item_in_window_order():
    like = torch.zeros(3, 1, 16, 32)
    assert torch.equal(glfcr.shift_mask(16, 32, 8, 4, like), glfcr.shift_mask(16, 32, 8, 4).repeat_interleave(3, dim=0))


def test_bad_config_is_refused():
    arch = get_arch("glfcr")
    with pytest.raises(ConfigError):
        arch.build(arch.config("small", heads=5))
    with pytest.raises(ConfigError):
        arch.build(arch.config("small", widths=(24,)))


def test_shifted_windows_are_used(small):
    shifted = [layer for block in small.blocks for layer in block.layers if layer.shift]
    assert shifted and all(layer.shift == small.config.window // 2 for layer in shifted)
    seen = []
    hook = shifted[0].register_forward_pre_hook(lambda mod, args: seen.append(args[2]))
    try:
        with torch.no_grad():
            small(*inputs(1, 32, 32))
    finally:
        hook.remove()
    # 32 x 32 input: a 16 x 16 feature map, four windows, three of them split by the roll
    assert seen[0].shape == (4, 1, 64, 64)
    assert int((seen[0] != 0).flatten(1).any(1).sum()) == 3


class _Reconstruction(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, optical, sar):
        return self.model(optical, sar)["reconstruction"]


def export(model, tile: int) -> onnx.ModelProto:
    """As ``export.onnx_graph._export``: dynamo, opset 18, dynamic batch, height and width,
    simplified and checked. Height and width are declared multiples of the model's stride,
    which the window partition needs."""
    import onnxsim

    from tdpcr_edge.export.onnx_graph import check

    m = model.config.multiple
    dims = {0: torch.export.Dim("batch"), 2: m * torch.export.Dim("height"), 3: m * torch.export.Dim("width")}
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                _Reconstruction(model),
                inputs(2, tile, tile),
                dynamo=True,
                opset_version=18,
                input_names=["optical", "sar"],
                output_names=["reconstruction"],
                dynamic_shapes={"optical": dims, "sar": dims},
                verbose=False,
            )
    finally:
        log.setLevel(level)
    proto, ok = onnxsim.simplify(program.model_proto)
    assert ok
    check(proto)
    return proto


@pytest.fixture(scope="module")
def exported(small, tmp_path_factory):
    proto = export(small, EXPORT_TILE)
    path = tmp_path_factory.mktemp("glfcr") / "small.onnx"
    onnx.save(proto, str(path))
    return proto, path


def _reference(model, n, h, w):
    o, s = inputs(n, h, w, seed=2)
    with torch.no_grad():
        return {"optical": o.numpy(), "sar": s.numpy()}, model(o, s)["reconstruction"].numpy()


def test_export_has_dynamic_size_and_at_most_5d_tensors(exported):
    proto, _ = exported
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim
        assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]
    inferred = onnx.shape_inference.infer_shapes(proto)
    ranks = [len(v.type.tensor_type.shape.dim) for v in inferred.graph.value_info]
    assert ranks and max(ranks) <= 5
    assert not {n.op_type for n in proto.graph.node} & {"Col2Im", "Unfold"}


@pytest.mark.parametrize("n,h,w", [(1, EXPORT_TILE, EXPORT_TILE), (2, 48, 64)])
def test_onnxruntime_matches_torch(small, exported, n, h, w):
    import onnxruntime as ort

    feeds, ref = _reference(small, n, h, w)
    session = ort.InferenceSession(str(exported[1]), providers=["CPUExecutionProvider"])
    out = session.run(None, feeds)[0]
    assert out.shape == ref.shape
    assert float(np.abs(out - ref).max()) <= 1e-4


def test_openvino_matches_torch(small, exported):
    import openvino as ov

    core = ov.Core()
    # f32: on a CPU with bfloat16 support OpenVINO would otherwise infer in bfloat16.
    compiled = core.compile_model(core.read_model(str(exported[1])), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    feeds, ref = _reference(small, 1, EXPORT_TILE, EXPORT_TILE)
    out = compiled(feeds)[0]
    assert out.shape == ref.shape
    assert float(np.abs(out - ref).max()) <= 1e-3


def test_tensorrt_parser_check_passes(exported):
    # Height and width are dynamic, so the profile's tile (256) is set by build-engine's
    # optimisation profile rather than checked against a fixed input size.
    assert check_graph(exported[0], load_profile("jetson-orin-nano-jp6")) == []


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("TDPCR_FULL_SIZE"),
    reason="the full size's export takes minutes on 2 cores; TDPCR_FULL_SIZE=1 runs it (docs/models.md has its figures)",
)
def test_full_config_at_the_profile_tile_passes_the_tensorrt_check():
    profile = load_profile("jetson-orin-nano-jp6")
    assert check_graph(export(build("full"), profile.tile), profile) == []
