"""tdpcr-edge: edge deployment toolkit for TDP-CR, joint SAR-optical cloud removal and
land-cover segmentation.

Nothing heavy beyond torch is imported here; optional back ends (onnxruntime, TensorRT)
are imported where they are used.
"""

from .data.normalize import Normalization
from .data.synthetic import make_scene
from .errors import CheckpointError, ConfigError, DataError, TdpcrError
from .evaluate import evaluate_scenes, run_eval
from .model import TDPCR, ModelConfig, build_model
from .runtime import Runner, load_runner
from .train import Checkpoint, TrainOptions, load_checkpoint, save_checkpoint, train

__version__ = "0.1.0"

__all__ = [
    "TDPCR", "Checkpoint", "CheckpointError", "ConfigError", "DataError", "ModelConfig", "Normalization",
    "Runner", "TdpcrError", "TrainOptions", "build_model", "evaluate_scenes", "load_checkpoint", "load_runner",
    "make_scene", "run_eval", "save_checkpoint", "train", "__version__",
]
