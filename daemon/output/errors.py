"""Errors of the output writer, kept apart so every output module can raise them.

The classes tell the worker what to do with a failed job:
- `OutputError` (the base): retry later; a full disk or a size limit is usually temporary;
- `PermanentOutputError` and its subclasses: retrying cannot help until a person changes
  something (remounts the library read-write, renames a file, removes a symlink), so the job
  fails without retry instead of re-running the whole restoration each attempt;
- `FenceLost`: the writer no longer holds its job's lease; nothing was renamed into place and
  the job belongs to someone else now, so the worker neither fails nor releases it.
"""

from __future__ import annotations

import errno
from pathlib import Path


class OutputError(Exception):
    """A result could not be written safely; nothing partial was left behind.

    The worker treats it as retryable (a full disk or a size limit is usually temporary).
    """


class PermanentOutputError(OutputError):
    """Writing cannot succeed until a person changes something; do not retry automatically."""


class ReadOnlyLibrary(PermanentOutputError):
    """The destination is on a read-only mount or not writable by lmd ("library is read-only")."""


class NameTooLong(PermanentOutputError):
    """A destination name is longer than the filesystem allows (NAME_MAX)."""


class UnsafePath(PermanentOutputError):
    """A destination would be reached through a symlink leaving the library or output tree,
    or is not a regular file (a directory, a FIFO): lmd writes nowhere else."""


class ReferenceTargetError(PermanentOutputError):
    """A plan would write onto an asset's reference original, which lmd never modifies."""


class RevertConflict(OutputError):
    """The file to revert is neither lmd's output nor the original: someone edited it."""


class FenceLost(OutputError):
    """The fence said the writer's lease is gone: the temporary file was removed and nothing
    was renamed into place. Raised by the worker's fence callable, passed through unchanged."""


_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def os_failure(exc: OSError, action: str, path: Path | str) -> OutputError:
    """The `OutputError` subclass for an OS error met while `action` (e.g. "cannot create a
    file in") on `path`: read-only and permission errors, and names too long, are permanent."""
    detail = f"{action} {path} ({exc.strerror or exc})"
    if exc.errno == errno.EROFS:
        return ReadOnlyLibrary(f"library is read-only: {detail}")
    if exc.errno in _NOT_WRITABLE:
        return ReadOnlyLibrary(f"library is not writable by lmd: {detail}")
    if exc.errno == errno.ENAMETOOLONG:
        return NameTooLong(f"name too long for the filesystem: {detail}")
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EISDIR):
        return UnsafePath(f"a symlink, directory or file is in the way: {detail}")
    return OutputError(f"{action} {path}: {exc.strerror or exc}")
