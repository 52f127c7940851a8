"""Putting a replaced still back: `lmd revert`, and the worker's undo of a commit it could not
record.

Both give back exactly what was there (the backup's bytes, or the symlink the target was, with
the original's mode, owner, mtime and extended attributes from the record's `FileMeta`), by
rename relative to the target's directory opened below the library root. Both decide from what
the target is now (the original, the record's output, something else, or gone) and check under
the directory's lock, immediately before the rename, that it has not changed since; and both
say whether they wrote anything (`RevertOutcome.changed`), so nobody is told "reverted" for a
file that was never touched. `revert` also gives back the target's XMP sidecar as it was
before lmd wrote there (`daemon.output.sidecar_keep`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import structlog

from core import hashing
from daemon.files.signature import FileSignature
from daemon.output.atomic import (
    Fence,
    atomic_symlink,
    atomic_write,
    entry_identity,
    signature_of_fd,
    unchanged_fence,
    write_all,
)
from daemon.output.errors import OutputError, RevertConflict
from daemon.output.replace import ReplaceRecord, is_own_output, save_record
from daemon.output.sidecar_keep import put_sidecar_back

log = structlog.get_logger(__name__)

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class RevertOutcome:
    """What `revert` or `undo_replace` did to the target. `changed` is False when the original
    was already in place and nothing was written (the record and backup may still be gone)."""

    target: Path
    changed: bool
    signature: FileSignature




State = Literal["original", "output", "other", "missing"]


def _state(record: ReplaceRecord) -> State:
    """What the target is now: the original, this record's output, something else, or gone.

    Read without following the target: a symlink is the original only when the original was
    that same symlink (lmd's outputs are regular files)."""
    target = record.target
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return "missing"
    original_link = record.meta.link if record.meta is not None else None
    if stat.S_ISLNK(st.st_mode):
        same = original_link is not None and os.readlink(target) == original_link
        return "original" if same else "other"
    if not stat.S_ISREG(st.st_mode):
        return "other"
    try:
        fd = os.open(target, _READ_FLAGS)
    except OSError:
        return "other"
    try:
        current = signature_of_fd(fd).content_hash
    finally:
        os.close(fd)
    if original_link is None and hashing.same_content(
        record.original.content_hash, current, target
    ):
        return "original"
    if record.names_output(current, target):
        return "output"
    if record.output is not None:
        return "other"
    # a record from before `pending` whose update a crash cut short: the still's provenance
    return "output" if is_own_output(target) else "other"


def _put_back(record: ReplaceRecord, fence: Fence) -> FileSignature:
    """Write the original over the target: the symlink it was, or the backup's bytes with the
    original's mode, owner, mtime and xattrs. `fence` runs immediately before the rename."""
    meta = record.meta
    if meta is not None and meta.link is not None:
        atomic_symlink(record.target, meta.link, meta=meta, root=record.root, fence=fence)
        return record.original
    try:
        backup_fd = os.open(record.backup, _READ_FLAGS)
    except OSError as exc:
        raise OutputError(f"backup {record.backup} is missing; nothing was changed") from exc
    try:
        if not hashing.matches_fd(backup_fd, record.original.content_hash):
            raise OutputError(f"backup {record.backup} is damaged; nothing was changed")
        kept = os.fstat(backup_fd)

        def copy_checked(fd: int) -> None:
            check, offset = hashing.DigestCheck(record.original.content_hash), 0
            while chunk := os.pread(backup_fd, _CHUNK, offset):
                write_all(fd, chunk)
                check.update(chunk)
                offset += len(chunk)
            if not check.matches():
                raise OutputError(f"backup {record.backup} changed while copying it back")

        return atomic_write(
            record.target,
            copy_checked,
            mode=meta.mode if meta else stat.S_IMODE(kept.st_mode),
            owner=(meta.uid, meta.gid) if meta else (kept.st_uid, kept.st_gid),
            mtime_ns=meta.mtime_ns if meta else kept.st_mtime_ns,
            xattrs=meta.xattrs if meta else None,
            root=record.root,
            fence=fence,
        )
    finally:
        os.close(backup_fd)


def revert(record: ReplaceRecord, *, force: bool = False) -> RevertOutcome:
    """Put the backed-up original back in place of lmd's output, atomically and exactly (bytes,
    symlink, mode, owner, mtime, xattrs).

    Refuses (`RevertConflict`) when the current file is neither lmd's output nor the original,
    i.e. someone edited it after lmd wrote it, unless `force`. On success the backup and its
    record are removed. The outcome says whether anything was written: a target that already
    is the original (a replace that never got to its rename) is left untouched.
    """
    target = record.target
    seen = entry_identity(target)
    state = _state(record)
    if state == "original":
        log.info("revert_already_original", path=str(target))
        put_sidecar_back(record.backup, target)
        _forget(record)
        return RevertOutcome(target, False, record.original)
    if state == "other" and not force:
        raise RevertConflict(
            f"{target} changed since lmd wrote it (neither lmd's output nor the original); "
            "use --force to put the original back anyway"
        )
    if state == "missing" and not force:
        raise RevertConflict(f"{target} is missing; use --force to restore the original")
    restored = _put_back(record, unchanged_fence(target, seen))
    put_sidecar_back(record.backup, target)  # `[output] xmp_sidecar`: what was there
    _forget(record)
    log.info("reverted", path=str(target))
    return RevertOutcome(target, True, restored)


def undo_replace(record: ReplaceRecord) -> RevertOutcome:
    """Undo a commit whose result could not be recorded (the worker's lease was lost after the
    rename): put the exact original back while the target still is this record's output.

    The backup and the record stay (output cleared), since the job's new owner may reuse them.
    `RevertConflict` when the target is no longer this commit's output (someone wrote since):
    it is left as it is.
    """
    if record.output is None:
        raise OutputError(f"nothing to undo for {record.target}: no output was recorded")
    target = record.target
    seen = entry_identity(target)
    state = _state(record)
    if state == "original":
        save_record(replace(record, output=None, pending=None))
        return RevertOutcome(target, False, record.original)
    if state != "output":
        raise RevertConflict(f"{target} is no longer the output this commit wrote; left as it is")
    restored = _put_back(record, unchanged_fence(target, seen))
    save_record(replace(record, output=None, pending=None))
    log.info("replace_undone", path=str(target), backup=str(record.backup))
    return RevertOutcome(target, True, restored)


def _forget(record: ReplaceRecord) -> None:
    for path in (record.record_path, record.backup):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
