"""Runtime backends behind one Runner interface."""

from .runner import BACKENDS, Runner, load_runner

__all__ = ["BACKENDS", "Runner", "load_runner"]
