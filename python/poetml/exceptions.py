"""Exceptions poetml raises on bad input.  Each message names the file, branch, entry or
value at fault and, where there is a choice, lists the valid ones."""

from __future__ import annotations

__all__ = [
    "BadValueError",
    "BatchError",
    "ConfigError",
    "DatasetError",
    "FirmwareError",
    "FirmwareValidationError",
    "MissingDependencyError",
    "PoetmlError",
    "ReadError",
    "SynthesisUnavailable",
    "Terminated",
    "UnsupportedLayerError",
    "UntrustedModelError",
    "WriteError",
]


class PoetmlError(Exception):
    """Base class of poetml's own errors."""


class ReadError(PoetmlError, OSError):
    """A file, tree or branch cannot be read (missing, truncated, corrupt, inconsistent)."""


class WriteError(PoetmlError, OSError):
    """An output cannot be written (no space, no permission, another writer holds it, an
    output that would overwrite an input); nothing half-written is left behind."""


class BadValueError(PoetmlError, ValueError):
    """An input file holds a value the toolkit cannot use (NaN, inf, negative pT); the
    message names the file, tree, branch and entry."""


class ConfigError(PoetmlError, ValueError):
    """A configuration is invalid: unknown key, wrong type or value.

    ``key`` names the offending field relative to the dataclass that raised it (``split``,
    ``slots[2]``); the configuration loader prefixes the section path, so a file's error reads
    ``run.yaml: dataset.split: ...``.  A message holding several errors has one per line.
    """

    def __init__(self, message: str = "", *, key: str | None = None) -> None:
        self.key = key
        self.detail = message
        super().__init__(f"{key}: {message}" if key else message)


class MissingDependencyError(PoetmlError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


class UntrustedModelError(PoetmlError):
    """A model file holds a layer or object that could run code stored in the file (a
    ``Lambda`` layer, an unknown custom object); loading it needs an explicit
    ``trust_model=True`` (CLI: ``--trust-model``)."""


class FirmwareError(PoetmlError):
    """The firmware stage cannot proceed (conversion, compilation, validation)."""


class UnsupportedLayerError(FirmwareError):
    """A layer of the model has no hls4ml implementation."""


class FirmwareValidationError(FirmwareError):
    """C simulation and the QKeras model disagree beyond the configured tolerance."""


class SynthesisUnavailable(FirmwareError):
    """No vendor HLS tool for the backend is on PATH."""


class DatasetError(PoetmlError, ValueError):
    """Data unfit for training or scoring: NaN/inf inputs, a single class, mismatched
    labels or shapes."""


class BatchError(PoetmlError):
    """A batch run cannot start or continue (output folder in use, spec changed ...)."""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the command line gets SIGTERM (a batch system's kill),
    so the run unwinds as on Ctrl-C: outputs being written are deleted."""
