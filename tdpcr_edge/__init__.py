"""tdpcr-edge: edge deployment toolkit for TDP-CR, joint SAR-optical cloud removal and
land-cover segmentation.

Importing the package imports nothing heavy: the names below are loaded when first used, so
a runtime install without torch (an artifact on OpenVINO or ONNX Runtime, an engine on
TensorRT) imports only what it runs.
"""

from __future__ import annotations

from .lazy import lazy_names

__version__ = "0.1.0"

_LAZY = {
    "Normalization": "data.normalize",
    "make_scene": "data.synthetic",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "TdpcrError": "errors",
    "evaluate_scenes": "evaluate",
    "run_eval": "evaluate",
    "TDPCR": "model",
    "ModelConfig": "model",
    "build_model": "model",
    "Runner": "backends",
    "load_runner": "backends",
    "Checkpoint": "train",
    "TrainOptions": "train",
    "load_checkpoint": "train",
    "save_checkpoint": "train",
    "train": "train",
}

__all__ = [*_LAZY, "__version__"]

__getattr__ = lazy_names(__name__, _LAZY)
