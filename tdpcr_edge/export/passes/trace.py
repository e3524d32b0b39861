"""Pass 1: the checkpoint's model traced to FP32 ONNX and simplified (``export.onnx_graph``)."""

from __future__ import annotations

from ..artifact import Artifact
from ..onnx_graph import export_onnx


def run(art: Artifact) -> None:
    art.stage("export ONNX")
    art.model = art.ckpt.build()  # export_onnx works on a copy; the QAT range lookup reads it too
    art.proto32 = export_onnx(art.model, tile=art.tile, plugin=art.opts.plugin)
    art.proto = art.proto32
    if art.opts.plugin:
        # TDP_PGF nodes read FP32 unless the FP16 pass gives them its half path.
        art.plugin_precision = {"precision": "fp32"}
