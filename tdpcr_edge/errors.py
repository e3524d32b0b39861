"""Every error a user can meet, under one root. As in rasterio's ``errors.py``, each class
also inherits the matching built-in, so library callers catch them by the standard type
(``except ValueError``) and the CLI prints one line and exits with the class's code.

Exit codes (documented in README.md, Commands, and docs/extending.md#errors-and-exit-codes):
    2  bad input or usage: a file, an option value, a missing library (one line, the fix)
    3  the drift gate refused an export: the artifact was measured and is over budget
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_DRIFT = 3


class TdpcrError(Exception):
    """Base class: the message is one line that names the file and the fix."""

    exit_code = EXIT_USAGE


class ConfigError(TdpcrError, ValueError):
    """Unknown config names, bad option values, options that do not fit together."""


class UnknownName(ConfigError, KeyError):
    """A name a table does not hold (an ISA feature, a registry row): a ConfigError that
    lookups may also catch as KeyError."""

    __str__ = Exception.__str__  # KeyError would quote the message


class DataError(TdpcrError, ValueError):
    """Input rasters or data-set layouts that cannot be used as they are."""


class CheckpointError(TdpcrError, OSError):
    """A checkpoint, artifact or engine record that is missing, unreadable or not ours."""


class IntegrityError(TdpcrError, OSError):
    """An artifact or engine file whose digest no longer matches its record, or whose signature
    is missing or does not hold: it changed after export, build or signing; nothing is loaded."""


class EngineMismatch(TdpcrError, ValueError):
    """A TensorRT engine built for another TensorRT release, GPU or plugin: rebuild it."""


class MissingDependency(TdpcrError, ImportError):
    """An optional library a command needs is not installed; the message says what to install."""


# What installs the libraries a runtime install leaves out, by top-level module (the backend
# registry's pip lines and the CLI's one-line errors read it).
INSTALL = {
    "torch": "pip install 'tdpcr-edge[train]'",
    "torchmetrics": "pip install 'tdpcr-edge[train]'",
    "onnx": "pip install 'tdpcr-edge[export]'",
    "onnxruntime": "pip install 'tdpcr-edge[ort]'",
    "onnxsim": "pip install 'tdpcr-edge[export]'",
    "onnxscript": "pip install 'tdpcr-edge[export]'",
    "onnxconverter_common": "pip install 'tdpcr-edge[export]'",
    "onnxruntime_extensions": "pip install 'tdpcr-edge[export]'",
    "openvino": "pip install 'tdpcr-edge[openvino]'",
    "matplotlib": "pip install 'tdpcr-edge[train]'",
    "ray": "pip install 'tdpcr-edge[cluster]'",
    "nncf": "pip install 'tdpcr-edge[nncf]'",
    "tensorrt": "JetPack's python3-libnvinfer, or pip install 'tdpcr-edge[trt]'",
}


def missing_module(exc: ModuleNotFoundError, what: str = "this command") -> MissingDependency | None:
    """One line for a library of an extra that is not installed (None for any other module:
    that is a broken install, and its traceback says more)."""
    top = (exc.name or "").split(".")[0]
    if top not in INSTALL:
        return None
    return MissingDependency(f"{what} needs {top}, which is not installed in this environment; {INSTALL[top]}")


class PeerLost(TdpcrError, RuntimeError):
    """Another process of a torchrun job died; the checkpoint is intact, rerun to resume."""


class RunFailed(TdpcrError, RuntimeError):
    """A step that ran and failed: a kernel launch, a CUDA call, a child process, an export
    that did not produce the graph it should; the message says what to report or retry."""


class DriftBudgetError(TdpcrError, ArithmeticError):
    """An export whose measured drift is over the budget; nothing was written."""

    exit_code = EXIT_DRIFT
