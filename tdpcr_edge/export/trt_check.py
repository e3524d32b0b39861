"""Can a target's TensorRT take this graph? Checked on any machine, before a device is involved.

For a TensorRT profile, every node of the ONNX graph against:
- the operators and data types the TensorRT ONNX parser documents (``trt_onnx_ops.toml``, a
  fact carried over from onnx-tensorrt's table; see its header for the release), and the
  attributes it restricts (Resize modes, constant ``axes``);
- the Q/DQ rules TensorRT enforces: INT8 (not UINT8), zero point 0, a per-tensor scale on
  activations, a per-channel scale on weights only along their output axis;
- a strongly typed network's rule that an operator's floating-point inputs share one type
  (FP16 and FP32 meet only through a Cast);
- plugin nodes among the plugin library's creators (name and version), their seven inputs
  FP32 or FP16 alike, as the plugin's supportsFormatCombination demands;
- the graph inputs' fixed dimensions against the profile's tile and batch.
For a CPU profile: no plugin nodes (OpenVINO and ONNX Runtime on the CPU cannot run them).
Each problem is one line naming the node.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import onnx
from onnx import numpy_helper

from ..runtime.graph import tensor_types  # noqa: F401 (re-exported)
from .plugin_op import DOMAIN, INPUTS, OP_TYPE, PLUGIN_VERSION, register_schema
from .profiles import Profile

ONNX_TYPES = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.FLOAT16: "FP16", onnx.TensorProto.BFLOAT16: "BF16", onnx.TensorProto.INT32: "INT32",
              onnx.TensorProto.INT64: "INT64", onnx.TensorProto.INT8: "INT8", onnx.TensorProto.UINT8: "UINT8", onnx.TensorProto.BOOL: "BOOL",
              onnx.TensorProto.DOUBLE: "DOUBLE"}
FLOATS = {"FP32", "FP16", "BF16"}
RESIZE_RULES = {
    "coordinate_transformation_mode": {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"},
    "mode": {"nearest", "linear"},
    "nearest_mode": {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"},
    "keep_aspect_ratio_policy": {"stretch"},
}
CONSTANT_AXES = {"Pad": 3, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1, "ReduceMean": 1}  # op -> index of its `axes` input
# Operators whose floating-point inputs are one type (the inputs indexed here).
SAME_TYPE = {"Add": (0, 1), "Sub": (0, 1), "Mul": (0, 1), "Div": (0, 1), "Max": None, "Min": None, "Sum": None, "Concat": None,
             "Conv": (0, 1, 2), "ConvTranspose": (0, 1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1), "Einsum": None, "Where": (1, 2), "Pow": (0,)}


@dataclass(frozen=True)
class Problem:
    node: str
    op: str
    message: str

    def line(self) -> str:
        return f"{self.node} ({self.op}): {self.message}"


@lru_cache(maxsize=1)
def parser_table() -> dict:
    return tomllib.loads(resources.files("tdpcr_edge.export").joinpath("trt_onnx_ops.toml").read_text())


def check_graph(proto: onnx.ModelProto, profile: Profile | None, creators: set[tuple[str, str]] | None = None) -> list[Problem]:
    """Every reason ``profile``'s runtime cannot take ``proto`` (empty: it can); ``None``: any
    TensorRT, the input shapes unchecked. ``creators``: (name, version) of the plugin
    library's creators; default the TDP_PGF plugin this version of tdpcr-edge builds."""
    plugin_nodes = [n for n in proto.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]
    if profile is not None and profile.is_cpu:
        return [Problem(n.name, n.op_type, f"{profile.name} runs on the CPU (OpenVINO, ONNX Runtime), which cannot run the TensorRT plugin; "
                        "export without --plugin") for n in plugin_nodes]
    table = parser_table()
    creators = creators if creators is not None else {(OP_TYPE, PLUGIN_VERSION)}
    types, consts = tensor_types(proto), _constants(proto)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    problems = _opset(proto, table) + (_inputs(proto, profile) if profile is not None else [])
    for n in proto.graph.node:
        name = n.name or f"<unnamed {n.op_type}>"
        if n.domain == DOMAIN and n.op_type == OP_TYPE:
            problems += _plugin(n, name, types, creators)
            continue
        if n.domain not in ("", "ai.onnx"):
            problems.append(Problem(name, n.op_type, f"operator of domain {n.domain!r}: the TensorRT ONNX parser knows none of it"))
            continue
        supported = table["supported"].get(n.op_type)
        if supported is None:
            known = n.op_type in table["unsupported"]["ops"]
            problems.append(Problem(name, n.op_type, f"the TensorRT ONNX parser ({table['release']} table) {'does not support' if known else 'does not list'} "
                                    f"{n.op_type}{'' if known else '; a later release may: check its operators.md'}"))
            continue
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += _qdq(n, name, types, consts, consumers)
            continue
        data = ONNX_TYPES.get(types.get(n.input[0])) if n.input else None
        if data and data not in supported and n.op_type != "Cast":
            problems.append(Problem(name, n.op_type, f"input {n.input[0]} is {data}; the parser takes {n.op_type} in {', '.join(supported)}"))
        problems += _attributes(n, name, consts) + _same_type(n, name, types)
    return problems


def _opset(proto: onnx.ModelProto, table: dict) -> list[Problem]:
    version = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is not None and not table["opset_min"] <= version <= table["opset_max"]:
        return [Problem("graph", "opset", f"opset {version} is outside {table['opset_min']}..{table['opset_max']} of the parser's table")]
    return []


def _inputs(proto: onnx.ModelProto, profile: Profile) -> list[Problem]:
    """Fixed dimensions must fit the engine the profile builds: batch up to max_batch,
    height and width equal to its tile. Dynamic ones are set by build-engine's profile."""
    out = []
    inits = {i.name for i in proto.graph.initializer}
    for v in proto.graph.input:
        if v.name in inits:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
        if len(dims) == 4:
            n, _, h, w = dims
            if n is not None and n > profile.max_batch:
                out.append(Problem(v.name, "input", f"fixed batch {n} exceeds {profile.name}'s max_batch {profile.max_batch}"))
            if any(d is not None and d != profile.tile for d in (h, w)):
                out.append(Problem(v.name, "input", f"fixed size {h}x{w} is not {profile.name}'s tile {profile.tile}; export with --tile {profile.tile}"))
    return out


def _plugin(n: onnx.NodeProto, name: str, types: dict, creators: set) -> list[Problem]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    version = attrs.get("plugin_version", b"").decode() if isinstance(attrs.get("plugin_version"), bytes) else str(attrs.get("plugin_version", ""))
    out = []
    if (n.op_type, version) not in creators:
        have = ", ".join(f"{a} v{b}" for a, b in sorted(creators)) or "none"
        out.append(Problem(name, n.op_type, f"plugin {n.op_type} v{version or '?'} is not among the plugin library's creators ({have}); rebuild the plugin (make kernels)"))
    if len(n.input) != len(INPUTS):
        out.append(Problem(name, n.op_type, f"{len(n.input)} inputs; the plugin takes {len(INPUTS)} ({', '.join(INPUTS)})"))
    seen = {ONNX_TYPES.get(types.get(i), "?") for i in n.input if i in types}
    if len(seen) > 1 or (seen and not seen <= {"FP32", "FP16"}):
        out.append(Problem(name, n.op_type, f"inputs of types {', '.join(sorted(seen))}; the plugin takes all seven in FP32 or all in FP16"))
    return out


def _qdq(n: onnx.NodeProto, name: str, types: dict, consts: dict, consumers: dict) -> list[Problem]:
    out = []
    quantized = n.output[0] if n.op_type == "QuantizeLinear" else n.input[0]
    zero = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    qtype = ONNX_TYPES.get(types.get(quantized)) or ("UINT8" if zero is None and len(n.input) < 3 else None)
    if zero is not None:
        qtype = {np.dtype(np.int8): "INT8", np.dtype(np.uint8): "UINT8"}.get(zero.dtype, qtype)
    if qtype == "UINT8":
        out.append(Problem(name, n.op_type, "UINT8 quantisation (the CPU placement); TensorRT takes INT8 only: export for this target (--target), "
                                             "which places INT8 for TensorRT"))
    if zero is not None and np.any(zero != 0):
        out.append(Problem(name, n.op_type, f"zero point {zero.ravel()[np.flatnonzero(zero)[0]]} is not 0; TensorRT quantises symmetrically (zero point 0)"))
    scale = consts.get(n.input[1]) if len(n.input) > 1 else None
    if scale is None:
        out.append(Problem(name, n.op_type, f"scale {n.input[1] if len(n.input) > 1 else '?'} is not a constant; TensorRT needs it at build time"))
    elif scale.size > 1:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        weight = n.op_type == "DequantizeLinear" and n.input[0] in consts and all(
            c.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and list(c.input).index(n.output[0]) == 1 for c in consumers.get(n.output[0], []))
        if not weight:
            out.append(Problem(name, n.op_type, f"per-channel scale ({scale.size} values) on an activation; TensorRT takes a per-tensor scale there"))
        elif axis != 0 and not (axis == 1 and all(c.op_type == "ConvTranspose" for c in consumers.get(n.output[0], []))):
            out.append(Problem(name, n.op_type, f"per-channel weight scale along axis {axis}; TensorRT takes it along the output channels (axis 0)"))
    return out


def _attributes(n: onnx.NodeProto, name: str, consts: dict) -> list[Problem]:
    out = []
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    if n.op_type == "Resize":
        for key, allowed in RESIZE_RULES.items():
            value = attrs.get(key)
            value = value.decode() if isinstance(value, bytes) else value
            if value is not None and value not in allowed:
                out.append(Problem(name, n.op_type, f"{key}={value!r}; the parser takes {', '.join(sorted(allowed))}"))
        if attrs.get("antialias", 0):
            out.append(Problem(name, n.op_type, "antialias=1; the parser does not support antialiasing"))
    index = CONSTANT_AXES.get(n.op_type)
    if index is not None and len(n.input) > index and n.input[index] and n.input[index] not in consts:
        out.append(Problem(name, n.op_type, f"axes {n.input[index]} is computed at run time; the parser needs it constant"))
    return out


def _same_type(n: onnx.NodeProto, name: str, types: dict) -> list[Problem]:
    if n.op_type not in SAME_TYPE:
        return []
    picked = SAME_TYPE[n.op_type]
    names = [n.input[i] for i in (picked if picked is not None else range(len(n.input))) if i < len(n.input) and n.input[i]]
    seen = {ONNX_TYPES.get(types.get(x)) for x in names} & FLOATS
    if len(seen) > 1:
        return [Problem(name, n.op_type, f"mixes {' and '.join(sorted(seen))} inputs; a strongly typed network needs a Cast between them")]
    return []


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                out[node.output[0]] = numpy_helper.to_array(value)
    return out


def plugin_creators(library) -> set[tuple[str, str]]:
    """(name, version) of every creator a built plugin library registers, asked from the
    library itself (``tdpcr_plugin_creators``, beside TensorRT's ``getCreators``)."""
    import ctypes

    from ..errors import ConfigError

    try:
        lib = ctypes.CDLL(str(library))
        fn = lib.tdpcr_plugin_creators
    except (OSError, AttributeError) as exc:
        raise ConfigError(f"{library}: not a loadable TDP_PGF plugin library ({exc}); build it with make kernels TRT_INCLUDE=...") from None
    fn.restype = ctypes.c_char_p
    return {tuple(line.split("/")[:2]) for line in fn().decode().splitlines() if line}


def check_artifact(artifact, target: str, plugin_lib=None) -> tuple[list[Problem], str | None]:
    """``check_graph`` of an artifact folder's model.onnx (or an .onnx file) for ``target``;
    the problems and the parser table's release (None for a CPU profile)."""
    from pathlib import Path

    from ..errors import ConfigError
    from .profiles import load_profile

    profile = load_profile(target)
    path = Path(artifact)
    model = path / "model.onnx" if path.is_dir() else path
    if not model.is_file():
        raise ConfigError(f"{artifact}: no model.onnx; pass a folder written by `tdpcr-edge export` or an .onnx file")
    try:
        proto = onnx.load(str(model))
    except Exception as exc:  # noqa: BLE001  (protobuf raises several kinds for a damaged file)
        raise ConfigError(f"{model}: not a readable ONNX model ({type(exc).__name__}); export it again") from None
    creators = plugin_creators(plugin_lib) if plugin_lib else None
    return check_graph(proto, profile, creators), None if profile.is_cpu else parser_table()["release"]


def refuse(problems: list[Problem], where, profile: Profile | None) -> None:
    """One line for commands that run the check before their own work (export, build-engine)."""
    if not problems:
        return
    from ..errors import ConfigError

    who = f"{profile.name}'s {'runtime' if profile.is_cpu else 'TensorRT'}" if profile else "TensorRT"
    more = f" (and {len(problems) - 1} more: tdpcr-edge check ART --target {profile.name if profile else 'PROFILE'} lists them)" if len(problems) > 1 else ""
    raise ConfigError(f"{where}: {who} cannot take this graph: {problems[0].line()}{more}")
