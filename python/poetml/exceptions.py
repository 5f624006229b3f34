"""Exceptions poetml raises on bad input.  Each message names the file, branch, entry or
value at fault and, where there is a choice, lists the valid ones."""

from __future__ import annotations

__all__ = ["ConfigError", "MissingDependencyError", "PoetmlError", "ReadError"]


class PoetmlError(Exception):
    """Base class of poetml's own errors."""


class ReadError(PoetmlError, OSError):
    """A file, tree or branch cannot be read (missing, truncated, corrupt, inconsistent)."""


class ConfigError(PoetmlError, ValueError):
    """A configuration is invalid: unknown key, wrong type or value."""


class MissingDependencyError(PoetmlError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""
