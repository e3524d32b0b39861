"""Two-phase training and checkpoint I/O."""

from .checkpoint import Checkpoint, default_checkpoint_path, load_checkpoint, save_checkpoint
from .trainer import TrainOptions, train

__all__ = ["Checkpoint", "TrainOptions", "default_checkpoint_path", "load_checkpoint", "save_checkpoint", "train"]
