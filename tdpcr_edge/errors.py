"""Exception types. Every user-facing failure is one of these, so the CLI can print a
single line and exit non-zero instead of a traceback."""

from __future__ import annotations


class TdpcrError(Exception):
    """Base class: the message is one line that names the file and the fix."""

    exit_code = 2


class DataError(TdpcrError):
    """Input rasters or data-set layouts that cannot be used as they are."""


class CheckpointError(TdpcrError):
    """A checkpoint that is missing, unreadable or not ours."""


class ConfigError(TdpcrError):
    """Unknown config names, bad option values."""


class MissingDependency(TdpcrError):
    """An optional library a command needs is not installed; the message says what to install."""
