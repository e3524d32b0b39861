"""Export: ONNX graphs (plain or with TDP_PGF plugin nodes), precision passes, drift, the gate.

The re-exports are lazy, so importing a leaf module (``export.heldout``) stays cheap."""

from importlib import import_module

_EXPORTS = {
    "ExportOptions": ".artifact",
    "run_export": ".pipeline",
    "compare_artifacts": ".compare",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
