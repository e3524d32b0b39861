"""Export: ONNX graphs (plain or with TDP_PGF plugin nodes), precision passes, drift, manifests.

The re-exports are lazy: the runtime imports ``export.plugin_op`` while ``export.compare``
imports the runtime, and eager imports here would make that a cycle."""

from importlib import import_module

_EXPORTS = {
    "ExportOptions": ".pipeline",
    "run_export": ".pipeline",
    "compare_artifacts": ".compare",
    "PRECISIONS": ".precision",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
