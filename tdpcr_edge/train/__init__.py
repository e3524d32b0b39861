"""Two-phase training and checkpoint I/O."""

from .checkpoint import Checkpoint, default_checkpoint_path, load_checkpoint, save_checkpoint
from .options import TrainOptions, check_options, phases
from .trainer import train

__all__ = ["Checkpoint", "TrainOptions", "check_options", "default_checkpoint_path", "load_checkpoint", "phases", "save_checkpoint", "train"]
