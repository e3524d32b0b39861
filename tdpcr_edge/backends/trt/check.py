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

from functools import lru_cache
from importlib import resources

import onnx
import tomllib

from ..targets import Profile
from ..tdp_pgf_op import DOMAIN, OP_TYPE, PLUGIN_VERSION, tensor_types
from .node_rules import ONNX_TYPES, Problem, attribute_problems, graph_constants, plugin_problems, qdq_problems, same_type_problems


@lru_cache(maxsize=1)
def parser_table() -> dict:
    return tomllib.loads(resources.files("tdpcr_edge.backends.trt").joinpath("trt_onnx_ops.toml").read_text())


def check_graph(proto: onnx.ModelProto, profile: Profile | None, creators: set[tuple[str, str]] | None = None) -> list[Problem]:
    """Every reason ``profile``'s runtime cannot take ``proto`` (empty: it can); ``None``: any
    TensorRT, the input shapes unchecked. ``creators``: (name, version) of the plugin
    library's creators; default the TDP_PGF plugin this version of tdpcr-edge builds."""
    plugin_nodes = [n for n in proto.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]
    if profile is not None and profile.is_cpu:
        return [
            Problem(
                n.name,
                n.op_type,
                f"{profile.name} runs on the CPU (OpenVINO, ONNX Runtime), which cannot run the TensorRT plugin; export without --plugin",
            )
            for n in plugin_nodes
        ]
    table = parser_table()
    creators = creators if creators is not None else {(OP_TYPE, PLUGIN_VERSION)}
    types, consts = tensor_types(proto), graph_constants(proto)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    problems = _opset(proto, table) + (_inputs(proto, profile) if profile is not None else [])
    for n in proto.graph.node:
        name = n.name or f"<unnamed {n.op_type}>"
        if n.domain == DOMAIN and n.op_type == OP_TYPE:
            problems += plugin_problems(n, name, types, creators)
            continue
        if n.domain not in ("", "ai.onnx"):
            problems.append(Problem(name, n.op_type, f"operator of domain {n.domain!r}: the TensorRT ONNX parser knows none of it"))
            continue
        supported = table["supported"].get(n.op_type)
        if supported is None:
            known = n.op_type in table["unsupported"]["ops"]
            problems.append(
                Problem(
                    name,
                    n.op_type,
                    f"the TensorRT ONNX parser ({table['release']} table) {'does not support' if known else 'does not list'} "
                    f"{n.op_type}{'' if known else '; a later release may: check its operators.md'}",
                )
            )
            continue
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            problems += qdq_problems(n, name, types, consts, consumers)
            continue
        data = ONNX_TYPES.get(types.get(n.input[0])) if n.input else None
        if data and data not in supported and n.op_type != "Cast":
            problems.append(
                Problem(name, n.op_type, f"input {n.input[0]} is {data}; the parser takes {n.op_type} in {', '.join(supported)}")
            )
        problems += attribute_problems(n, name, consts) + same_type_problems(n, name, types)
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
                out.append(
                    Problem(
                        v.name,
                        "input",
                        f"fixed size {h}x{w} is not {profile.name}'s tile {profile.tile}; export with --tile {profile.tile}",
                    )
                )
    return out


def plugin_creators(library) -> set[tuple[str, str]]:
    """(name, version) of every creator a built plugin library registers, asked from the
    library itself (``tdpcr_plugin_creators``, beside TensorRT's ``getCreators``)."""
    import ctypes

    from ...errors import ConfigError

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

    from ...errors import ConfigError
    from ..targets import load_profile

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
    from ...errors import ConfigError

    who = f"{profile.name}'s {'runtime' if profile.is_cpu else 'TensorRT'}" if profile else "TensorRT"
    more = (
        f" (and {len(problems) - 1} more: tdpcr-edge check ART --target {profile.name if profile else 'PROFILE'} lists them)"
        if len(problems) > 1
        else ""
    )
    raise ConfigError(f"{where}: {who} cannot take this graph: {problems[0].line()}{more}")
