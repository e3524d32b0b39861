"""The precision registry: one row per artifact precision, read by export (which graph pass
makes it, whether it calibrates), the runtime (which backends run it, computing in what),
target profiles (which kinds can build it), bench and the CLI's choices. Adding a precision
is its export pass module plus one row here.

A precision is a property of the artifact, not a runtime flag: bf16 is the FP32 graph that
OpenVINO computes in BF16 on CPUs that do BF16 natively, and its drift is gated as it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import ConfigError


@dataclass(frozen=True)
class Precision:
    name: str
    # Export pass that turns the traced FP32 graph into this precision's ("module:function" of
    # tdpcr_edge.export.passes); empty: the FP32 graph as traced.
    graph_pass: str
    calibrated: bool  # needs calibration tiles (INT8 ranges)
    # backend -> what that backend computes the artifact in ("graph": the graph's own types,
    # OpenVINO's inference precision otherwise). A backend absent here cannot run it.
    runtime: dict[str, str]
    targets: tuple[str, ...]  # target profile kinds that can build it (tensorrt, cpu)
    description: str
    # Why this machine cannot run the precision at all, or None (bf16 on a CPU without BF16).
    unavailable: Callable[[], str | None] = field(default=lambda: None, compare=False)

    def runs_on(self, backend: str) -> bool:
        return backend in self.runtime

    def inference_precision(self, backend: str) -> str:
        return self.runtime[backend]

    def refuse_backend(self, backend: str, where: str) -> None:
        """One line when ``backend`` cannot run an artifact of this precision."""
        if backend not in self.runtime:
            raise ConfigError(
                f"{where}: a {self.name} artifact is {self.description}; its drift was measured there: "
                f"pass --backend {' or '.join(self.runtime)}"
            )


def _bf16_unavailable() -> str | None:
    from .probe import cpu_isa

    isa = cpu_isa()
    if isa.native_bf16:
        return None
    return f"this CPU computes BF16 natively with neither AMX nor AVX512_BF16 (it has {isa.summary()}); OpenVINO would emulate it"


_GRAPH = {"ort": "graph", "openvino": "f32", "trt": "graph"}

REGISTRY: dict[str, Precision] = {
    p.name: p
    for p in (
        Precision("fp32", "", False, dict(_GRAPH), ("tensorrt", "cpu"), "the FP32 graph as traced"),
        Precision(
            "fp16",
            "tdpcr_edge.export.passes.fp16:convert",
            False,
            dict(_GRAPH),
            ("tensorrt", "cpu"),
            "FP16 with explicit casts, precision-sensitive nodes in FP32",
        ),
        Precision(
            "bf16",
            "",
            False,
            {"openvino": "bf16"},
            ("cpu",),
            "the FP32 graph computed in BF16 by OpenVINO (CPUs with AMX or AVX512_BF16)",
            _bf16_unavailable,
        ),
        Precision(
            "int8",
            "tdpcr_edge.export.passes.int8:quantize",
            True,
            dict(_GRAPH),
            ("tensorrt", "cpu"),
            "INT8 Q/DQ on the convolutions, calibrated activations",
        ),
        Precision(
            "mixed",
            "tdpcr_edge.export.passes.int8:mixed",
            True,
            dict(_GRAPH),
            ("tensorrt", "cpu"),
            "INT8 with the most sensitive convolutions in FP16, until the drift budget holds",
        ),
    )
}


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Precision:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown precision {name!r}: choose one of {', '.join(REGISTRY)}") from None
