"""Export: ONNX graphs (plain or with TDP_PGF plugin nodes), precision passes, drift, manifests."""

from .compare import compare_artifacts
from .pipeline import ExportOptions, run_export
from .precision import PRECISIONS

__all__ = ["ExportOptions", "PRECISIONS", "compare_artifacts", "run_export"]
