"""The last pass: the manifest (docs/architecture.md#the-artifact-contract) and the artifact folder, assembled in
a temporary folder and renamed into place, so a failed export leaves nothing behind:

    ART/model.onnx      the graph (FP32 I/O whatever the precision inside)
    ART/checkpoint.pt   the source checkpoint, so a checkpoint backend can load the artifact
    ART/manifest.json   what the artifact is, how it was made and what it measured
    ART/drift.json      the drift against torch FP32 on held-out tiles
    ART/golden/         the golden set (tdpcr_edge.golden): tiles, FP32 outputs, ground truth
    ART/mlm.json        the artifact as a STAC item with the Machine Learning Model extension (export.mlm)

The manifest records every other file's sha256 (``files``), which every loader checks.
"""

from __future__ import annotations

import shutil

import onnx

from ... import golden
from ...backends.tdp_pgf_op import count_plugin_nodes
from ...contract import PLUGIN_OP, PLUGIN_VERSION, build_manifest, file_digests, file_sha256
from ...io_utils import atomic_dir, write_json
from .. import mlm
from ..artifact import Artifact
from ..onnx_graph import OPSET, io_signature
from .gate import runtime_precision


def run(art: Artifact) -> dict:
    ckpt, c = art.ckpt, art.ckpt.config
    inputs, outputs = io_signature(art.proto)
    manifest = build_manifest(
        model=c.to_dict(),
        checkpoint={
            "file": "checkpoint.pt" if art.opts.with_checkpoint else None,
            "sha256": file_sha256(ckpt.path),
            "source": str(ckpt.path),
            "phase": ckpt.phase,
            "step": ckpt.step,
        },
        opset=OPSET,
        precision=art.precision,
        tile=art.tile,
        plugin={
            "enabled": art.opts.plugin,
            "nodes": count_plugin_nodes(art.proto),
            "op": PLUGIN_OP,
            "version": PLUGIN_VERSION,
            **(art.plugin_precision or {}),
        },
        inputs=inputs,
        outputs=outputs,
        normalization=ckpt.normalization.to_dict(),
        classes=ckpt.classes,
        colors=[list(col) for col in ckpt.colors],
        calibration=art.calibration,
        fp16_fallback_layers=art.fallback,
        layer_sensitivity=dict(sorted(art.sensitivity.items(), key=lambda kv: -kv[1])[:10]) if art.sensitivity else None,
        target=art.profile.name if art.profile else None,
        runtime={"backend": art.backend, "inference_precision": runtime_precision(art), "precision_chosen_by": art.chosen_by},
        drift={k: v for k, v in art.drift.items() if k not in ("reference", "candidate")},
    )
    art.stage("write artifact")
    with atomic_dir(art.opts.out) as tmp:
        onnx.save(art.proto, str(tmp / "model.onnx"))
        if art.opts.with_checkpoint:
            shutil.copyfile(ckpt.path, tmp / "checkpoint.pt")
        manifest["model_bytes"] = (tmp / "model.onnx").stat().st_size
        manifest["onnx_sha256"] = file_sha256(tmp / "model.onnx")
        write_json(tmp / "drift.json", art.drift)
        manifest["golden"] = {**golden.write(tmp, art.golden["tiles"], art.golden["outputs"]), **art.golden["record"]}
        write_json(tmp / mlm.FILE, mlm.mlm_item(manifest, art.profile.kind if art.profile else None))
        manifest["files"] = file_digests(tmp)
        write_json(tmp / "manifest.json", manifest)
    return manifest
