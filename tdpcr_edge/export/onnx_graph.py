"""torch -> ONNX: export with dynamic batch and tile size, simplify, check.

Named ``onnx_graph`` rather than ``onnx`` so that ``import onnx`` inside the package
always means the library."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings

import onnx
import torch
from torch import nn

from ..backends.tdp_pgf_op import count_plugin_nodes, register_schema, translation_table
from ..errors import ConfigError, RunFailed
from ..model import Network
from ..model.pgf import PromptGuidedFusion
from ..model.registry import get_arch, outputs_of
from . import graph_cache

INPUT_NAMES = ("optical", "sar")
OPSET = 18


class GraphModule(nn.Module):
    """The deployed signature: (optical, sar) -> the outputs the network has, in
    ``model.registry.OUTPUTS`` order (``outputs_of``): reconstruction, and where the
    architecture has them segmentation logits, SAR reliance, per-band variance."""

    def __init__(self, model: Network):
        super().__init__()
        self.model = model
        self.names = outputs_of(model.config)

    def forward(self, optical: torch.Tensor, sar: torch.Tensor):
        out = self.model(optical, sar)
        return tuple(out[k] for k in self.names)


# Graphs already exported in this process, by weights, config and options: exporting is the
# slowest step of an export (docs/export.md), and bench (or a test session) exports one model
# at several precisions.
# Between processes, ``graph_cache`` keeps them on disk.
_EXPORTED: dict[str, bytes] = {}


def _export_key(model: Network, tile: int, plugin: bool, simplify: bool) -> str:
    import hashlib

    clips = sorted(getattr(model, "activation_clips", {}).items())  # train.qat.clip_activations
    h = hashlib.sha256(repr((model.config.to_dict(), tile, plugin, simplify, OPSET, clips, graph_cache.code_fingerprint())).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: Network, tile: int = 256, plugin: bool = False, simplify: bool = True) -> onnx.ModelProto:
    """Export ``model`` (left untouched) to an ONNX model proto, opset 18, dynamic batch,
    height and width. ``plugin`` replaces each PGF by one TDP_PGF node. The same weights
    and options exported again, in this process or from the graph cache, return a copy of
    the first graph."""
    key = _export_key(model, tile, plugin, simplify)
    if key not in _EXPORTED:
        if len(_EXPORTED) >= 8:
            _EXPORTED.pop(next(iter(_EXPORTED)))
        data = graph_cache.load(key)
        if data is None:
            with graph_cache.tracing(key):
                data = graph_cache.load(key)  # traced by another process while this one waited
                if data is None:
                    data = _export(model, tile, plugin, simplify).SerializeToString()
                    graph_cache.store(key, data)
        _EXPORTED[key] = data
    return onnx.ModelProto.FromString(_EXPORTED[key])


def _export(model: Network, tile: int, plugin: bool, simplify: bool) -> onnx.ModelProto:
    model = copy.deepcopy(model).eval()
    model.prune_silent_adapters()
    if tile % model.config.multiple:
        raise ConfigError(f"--tile {tile} is not a multiple of {model.config.multiple}, which the {model.config.name} model needs")
    table = None
    if plugin:
        pgfs = [m for m in model.modules() if isinstance(m, PromptGuidedFusion)]
        if not pgfs or not get_arch(model.config.arch).plugin:
            raise ConfigError(
                f"--plugin needs a PGF model; this checkpoint is {model.config.arch} with {model.config.fusion} fusion: "
                "export it without --plugin"
            )
        for m in pgfs:
            m.fused_op = True
        table = translation_table()
    c = model.config
    # Batch 2 in the example: torch.export specialises dimensions that are 1.
    optical = torch.rand(2, c.optical_bands, tile, tile)
    sar = torch.rand(2, c.sar_bands, tile, tile)
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height"), torch.export.Dim("width")
    if get_arch(c.arch).windowed:
        # A window partition's divisibility cannot be proven from a plain size: declared, the
        # exporter traces once instead of failing and retrying with the stride it guessed.
        height, width = c.multiple * height, c.multiple * width
    dims = {0: batch, 2: height, 3: width}
    # The exporter narrates on stdout and warns about things that do not concern this
    # model (torchvision ops, axis renames); keep the CLI's output ours.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")
        graph = GraphModule(model).eval()
        program = torch.onnx.export(
            graph,
            (optical, sar),
            dynamo=True,
            opset_version=OPSET,
            input_names=list(INPUT_NAMES),
            output_names=list(graph.names),
            dynamic_shapes={"optical": dims, "sar": dims},
            custom_translation_table=table,
            verbose=False,
        )
    proto = program.model_proto
    if simplify:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
        if ok:
            proto = simplified
    if plugin:
        register_schema()
        n = count_plugin_nodes(proto)
        if n != len(c.widths):
            raise RunFailed(f"expected {len(c.widths)} TDP_PGF nodes after export, found {n}; export without --plugin and report this")
    check(proto)
    return proto


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def check(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnx.checker (full) and strict shape inference; raises on an invalid graph."""
    register_schema()
    onnx.checker.check_model(proto, full_check=True)
    return onnx.shape_inference.infer_shapes(proto, check_type=True)


def io_signature(proto: onnx.ModelProto) -> tuple[list[dict], list[dict]]:
    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param or d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "shape": shape, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name})
        return out

    return describe(proto.graph.input), describe(proto.graph.output)
