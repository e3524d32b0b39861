"""Runtime backends behind one Runner interface."""

from .factory import load_runner, resolve_backend
from .runner import BACKENDS, Runner

__all__ = ["BACKENDS", "Runner", "load_runner", "resolve_backend"]
