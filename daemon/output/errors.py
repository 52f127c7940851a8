"""Errors of the output writer, kept apart so every output module can raise them."""

from __future__ import annotations


class OutputError(Exception):
    """A result could not be written safely; nothing partial was left behind.

    The worker treats it as retryable (a full disk or a size limit is usually temporary).
    """


class RevertConflict(OutputError):
    """The file to revert is neither lmd's output nor the original: someone edited it."""


class ReferenceTargetError(OutputError):
    """A plan would write onto an asset's reference original, which lmd never modifies."""
