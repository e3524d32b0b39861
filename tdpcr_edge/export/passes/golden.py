"""The golden set (``tdpcr_edge.golden``): the first held-out tiles, cut at the size the model
will run them, with torch FP32's outputs on them and the artifact's own drift on them, measured
here on the artifact's backend. ``verify`` repeats that measurement where the artifact runs."""

from __future__ import annotations

from ... import golden
from ...backends.factory import graph_runner
from ...drift import measure_drift
from ..artifact import Artifact
from ..heldout import crop


def run(art: Artifact) -> None:
    art.stage("golden set")
    count, size = golden.shape_for(art.tile, fixed_tile=art.profile is not None and not art.profile.is_cpu)
    c = art.ckpt.config
    tiles = [crop(t, size, c.multiple) for t in art.eval_tiles[:count]]
    candidate = graph_runner(art.proto, c.to_dict(), art.backend, art.precision)
    drift, (ref_eval, ref_outputs) = measure_drift(art.reference_runner(), candidate, tiles, c.num_classes)
    art.golden = {
        "tiles": tiles,
        "outputs": ref_outputs,
        "record": {
            "backend": art.backend,
            "reference": ref_eval.summary(),
            "drift": {k: drift[k] for k in golden.DRIFT_KEYS},
        },
    }
