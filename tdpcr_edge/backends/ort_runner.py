"""ONNX Runtime backend (CPU by default; CUDA when onnxruntime-gpu is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from ..errors import CheckpointError
from ..probe import cpu_cores
from .runner import Runner
from .tdp_pgf_op import has_plugin_nodes, session_options, to_ort_domain

# ONNX Runtime's intra-op threads spin after each call by default, waiting for the next one.
# Idle, they still hold the cores: another runtime timed next in one process, or the scene
# stream's reader, blender and writer threads beside the inference, lose those cores. Off,
# the threads sleep between calls; docs/streaming.md and docs/benchmarks.md have the
# measurements that chose it.
SPIN_BETWEEN_CALLS = False


class OrtRunner(Runner):
    name = "ort"

    @property
    def activates_on_any_thread(self) -> bool:  # a CPU session serves calls from any thread
        return self.providers == ["CPUExecutionProvider"]

    def __init__(
        self,
        model: str | Path | onnx.ModelProto,
        config: dict,
        providers: list[str] | None = None,
        threads: int | None = None,
        spinning: bool | None = None,
    ):
        """``model``: an .onnx path or a model proto; ``config``: the model config dict
        (manifest["model"]); ``spinning``: whether idle threads spin between calls (default
        ``SPIN_BETWEEN_CALLS``)."""
        super().__init__(2 ** (len(config["widths"]) - 1), config["optical_bands"], config["sar_bands"])
        self.model = model
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads or cpu_cores()
        self.spinning = SPIN_BETWEEN_CALLS if spinning is None else spinning
        self.session = None

    def share_cpu(self, workers: int) -> int:
        # One session serves concurrent runs (its run() is thread-safe). The intra-op count
        # includes the calling thread, so with one thread each run computes on its caller.
        concurrent = workers if workers >= 2 and self.providers[0] == "CPUExecutionProvider" else 1
        self.threads = max(1, cpu_cores() // concurrent)
        self.deactivate()  # a session made before keeps its old thread count
        return concurrent

    def activate_impl(self) -> None:
        import onnxruntime as ort

        proto = self.model
        if not isinstance(proto, onnx.ModelProto):
            try:
                proto = onnx.load(str(proto))
            except Exception as exc:
                raise CheckpointError(
                    f"{proto}: not a readable ONNX model ({str(exc).splitlines()[0]}); export the artifact again"
                ) from exc
        plugin = has_plugin_nodes(proto)
        so = session_options(plugin)
        so.intra_op_num_threads = self.threads
        spin = "1" if self.spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        data = (to_ort_domain(proto) if plugin else proto).SerializeToString()
        try:
            self.session = ort.InferenceSession(data, sess_options=so, providers=self.providers)
        except Exception as exc:  # ONNX Runtime's errors derive from Exception alone
            # (and a message it cannot decode from a garbled graph is a UnicodeDecodeError)
            if not type(exc).__module__.startswith("onnxruntime") and not isinstance(exc, UnicodeDecodeError):
                raise
            where = self.model if not isinstance(self.model, onnx.ModelProto) else "the graph"
            raise CheckpointError(
                f"{where}: ONNX Runtime cannot load this graph ({str(exc).splitlines()[0]}); export the artifact again"
            ) from exc
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer_impl(self, optical: np.ndarray, sar: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.output_names, {"optical": optical, "sar": sar})
        return dict(zip(self.output_names, values))

    def deactivate_impl(self) -> None:
        self.session = None


def load(path: Path, manifest: dict, *, variant: str = "", device: str | None = None, precision: str | None = None, **kwargs) -> OrtRunner:
    """The registry's entry point: an artifact folder."""
    return OrtRunner(Path(path) / "model.onnx", manifest["model"], **kwargs)


def load_graph(proto: onnx.ModelProto, config: dict, precision: str) -> OrtRunner:
    return OrtRunner(proto, config)


def unavailable(combo) -> str | None:
    from ..probe import isa_cap

    if isa_cap():
        return f"ONNX Runtime's kernels ignore ONEDNN_MAX_CPU_ISA={isa_cap()}: its figures would be this CPU's full ISA's"
    return None
