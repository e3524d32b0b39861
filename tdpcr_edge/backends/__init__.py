"""The backends behind one Runner interface; ``backends.registry`` lists them."""

from .factory import load_runner, resolve_backend
from .runner import Runner

__all__ = ["BACKENDS", "Runner", "load_runner", "resolve_backend"]


def __getattr__(name: str):
    # The registry as it is now (a backend registered at run time included).
    if name == "BACKENDS":
        from .registry import names

        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
