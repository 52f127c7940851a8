"""Replace mode: back a library file up, swap in lmd's output, and put it back.

One protocol for every file lmd replaces (a still: `commit_replace`; a Live Photo's MOV:
`daemon.output.video_replace`), in `replace_target`; each step crash-safe on its own:
1. copy the target into the state directory (temp, fsync, rename) and check the copy's hash;
2. write a record beside the backup (`<backup>.lmd.json`) naming both files and what the target
   was besides its bytes (symlink, mode, owner, mtime, extended attributes: `FileMeta`);
3. write the output into a temporary file, name its signature in the record (`pending`),
   rename it over the target, then record it as the output.
A crash after 1 or 2, or in 3 before the rename, leaves the original in place and a backup to
reuse; a crash after the rename leaves lmd's output with a record naming it (as `pending` until
the last save), so the retry and `revert` recognise it by hash, whatever the file's format
(a still also carries lmd's XMP provenance, which records written before `pending` rely on).
`revert` refuses to overwrite a file someone edited since, unless forced.

The worker's lease fences step 3 (`fence`, checked under the directory's lock immediately
before the rename); when the rename happened but the worker then fails to record the result
because its lease was lost, `undo_replace` (in `daemon.output.revert`) puts the original back.
The target is read and
written relative to its directory, opened below the library root without following symlinks,
and replaced by rename: a symlink or a hard-linked file is never written through.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from core import hashing
from daemon.files.signature import FileSignature
from daemon.output.atomic import (
    Fence,
    atomic_write,
    atomic_write_bytes,
    check_writable,
    copy_fd,
    identity_of,
    signature_of_fd,
    unchanged_fence,
)
from daemon.output.beneath import Directory, open_directory, root_of
from daemon.output.errors import OutputError, UnsafePath, os_failure
from daemon.output.filemeta import FileMeta, meta_of_file, meta_of_link
from daemon.output.image import read_metadata, write_image
from daemon.output.xmp import read_provenance

if TYPE_CHECKING:
    from daemon.output.plan import OutputPlan

log = structlog.get_logger(__name__)

RECORD_SUFFIX = ".lmd.json"
NAME_MAX = 255  # the usual limit; backup and record names stay within it
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # NONBLOCK: a FIFO never hangs us
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ReplaceRecord:
    """What `lmd revert` needs: the target, its backup, both contents' signatures, and what the
    target was besides its bytes (`meta`; None in records written before lmd kept it).
    `pending` is the output about to be renamed over the target (saved just before the
    rename, cleared when `output` names it): after a crash in between, it names lmd's output."""

    target: Path
    backup: Path
    relative: Path
    original: FileSignature
    output: FileSignature | None
    created: str
    meta: FileMeta | None = None
    pending: FileSignature | None = None

    def names_output(self, content_hash: str, path: Path) -> bool:
        """Whether `content_hash` (of the file at `path`) is the output this record names,
        recorded or announced before its rename."""
        return any(
            sig is not None and hashing.same_content(sig.content_hash, content_hash, path)
            for sig in (self.output, self.pending)
        )

    @property
    def record_path(self) -> Path:
        return record_path_for(self.backup)

    @property
    def root(self) -> Path:
        """The library root the target lies in (no symlink below it is followed)."""
        return root_of(self.target, self.relative)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "backup": str(self.backup),
            "relative": str(self.relative),
            "original": self.original.to_dict(),
            "output": self.output.to_dict() if self.output else None,
            "created": self.created,
            "meta": self.meta.to_dict() if self.meta else None,
            "pending": self.pending.to_dict() if self.pending else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplaceRecord:
        return cls(
            target=Path(data["target"]),
            backup=Path(data["backup"]),
            relative=Path(data["relative"]),
            original=FileSignature.from_dict(data["original"]),
            output=FileSignature.from_dict(data["output"]) if data.get("output") else None,
            created=str(data["created"]),
            meta=FileMeta.from_dict(data["meta"]) if data.get("meta") else None,
            pending=FileSignature.from_dict(data["pending"]) if data.get("pending") else None,
        )


def backup_name(target_name: str, digest: str) -> str:
    """The backup's file name: the target's name plus the first 8 hex digits of its content
    digest (`core.hashing.short`, whatever algorithm named it; versions of one still never
    overwrite each other's backup). A name that would not fit NAME_MAX with the record's suffix
    keeps a prefix of the target's name (cut at a character boundary) and a hash of the whole
    name, so every target name the library allows works."""
    name = f"{target_name}.{hashing.short(digest)}"
    if len(os.fsencode(name + RECORD_SUFFIX)) <= NAME_MAX:
        return name
    raw = os.fsencode(target_name)
    tail = f"~{hashlib.sha256(raw).hexdigest()[:12]}.{hashing.short(digest)}"
    keep = NAME_MAX - len(RECORD_SUFFIX) - len(tail)
    while keep > 0 and raw[keep] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
        keep -= 1
    return os.fsdecode(raw[:keep]) + tail


def record_path_for(backup: Path) -> Path:
    return backup.with_name(backup.name + RECORD_SUFFIX)


def save_record(record: ReplaceRecord) -> None:
    data = json.dumps(record.to_dict(), indent=2, sort_keys=True).encode("utf-8")
    atomic_write_bytes(record.record_path, data)


def load_record(path: Path) -> ReplaceRecord:
    try:
        return ReplaceRecord.from_dict(json.loads(Path(path).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"unreadable replace record {path}: {exc}") from exc


def iter_records(
    backup_dir: Path,
    target: Path | None = None,
    *,
    recursive: bool = True,
    unreadable: list[OutputError] | None = None,
) -> Iterator[ReplaceRecord]:
    """Every replace record under `backup_dir` (only those for `target` when given).

    An unreadable record raises `OutputError`, unless `unreadable` is given: then the error is
    appended there and the other records still come (one damaged record must not stop
    `lmd revert --all` from putting every other original back)."""
    root = Path(backup_dir)
    if not root.is_dir():
        return
    wanted = Path(os.path.abspath(target)) if target is not None else None
    found = root.rglob(f"*{RECORD_SUFFIX}") if recursive else root.glob(f"*{RECORD_SUFFIX}")
    for path in sorted(found):
        try:
            record = load_record(path)
        except OutputError as exc:
            if unreadable is None:
                raise
            unreadable.append(exc)
            continue
        if wanted is None or record.target == wanted:
            yield record


def is_own_output(path: Path, expected_hash: str | None = None) -> bool:
    """True when `path` is lmd's output: its content has `expected_hash` (the job row's output
    digest, checked with the algorithm it names, so rows written before BLAKE3 still count) or,
    without one, its XMP carries lmd provenance."""
    path = Path(path)
    if not path.is_file():
        return False
    if expected_hash:
        return hashing.matches(path, expected_hash)
    try:
        return read_provenance(read_metadata(path).xmp) is not None
    except OutputError:
        return False


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------- reading the target
@contextlib.contextmanager
def _opened_target(
    directory: Directory, name: str, root: Path
) -> Iterator[tuple[int, FileMeta, tuple[int, ...]]]:
    """The target opened for reading without following it, with what it is besides its bytes
    and the identity of its directory entry (see `_identity`).

    A regular file is opened with O_NOFOLLOW (swapped for a symlink since: `UnsafePath`); a
    symlink is read through only when it resolves inside the library root (discovery accepts
    no other), and its own text, owner and mtime are what revert puts back.
    """
    target = directory.path / name
    try:
        st = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(name, dir_fd=directory.fd)
            real = Path(os.path.realpath(directory.entry(name)))
            if not real.is_relative_to(os.path.realpath(root)):
                raise UnsafePath(f"{target} is a symlink leaving the library ({link})")
            fd = os.open(real, _READ_FLAGS)
            meta = meta_of_link(st, link)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, _READ_FLAGS | os.O_NOFOLLOW, dir_fd=directory.fd)
            meta = meta_of_file(fd)
        else:
            raise UnsafePath(f"{target} is not a regular file")
    except OSError as exc:
        raise os_failure(exc, "cannot read the target", target) from exc
    try:
        content = os.fstat(fd)
        if not stat.S_ISREG(content.st_mode):
            raise UnsafePath(f"{target} is not a regular file")
        if stat.S_ISREG(st.st_mode) and (content.st_dev, content.st_ino) != (st.st_dev, st.st_ino):
            raise OutputError(f"{target} was replaced while lmd opened it; retry later")
        yield fd, meta, identity_of(st)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------- replacing
Staged = Callable[[FileSignature], None]
"""Called with the output's signature after it is written and verified, before its rename."""


@dataclass(frozen=True, slots=True)
class ReplaceWrite:
    """How the writer of a replacement writes (`replace_target`): restored from `original` (the
    backed-up bytes, never the file in the library), below `root`, with the target's `mode`
    and `owner`, renamed over the target through `fence`, after calling `staged`."""

    original: Path
    root: Path
    mode: int
    owner: tuple[int, int]
    fence: Fence
    staged: Staged


def replace_target(
    plan: OutputPlan, write: Callable[[ReplaceWrite], FileSignature], *,
    fence: Fence | None = None,
) -> ReplaceRecord:
    """Back up `plan.target`, then replace it with what `write` writes atomically (through
    `atomic_write` with the fence and `staged` it is given); returns the record naming both.

    When the target already is lmd's output from an earlier run (a record names it), the
    existing backup of the true original is kept and only the output is rewritten. `fence`
    (the worker's lease check, raising `FenceLost`) runs before the backup and immediately
    before the rename; a read-only library fails before anything is copied (`ReadOnlyLibrary`).
    Whatever `write` raises is raised as it was, the target untouched, the backup and its record
    kept for the next attempt. After the rename the caller records the result; if that fails
    because the lease was lost, `daemon.output.revert.undo_replace(record)` puts the original
    back.
    """
    if plan.kind != "replace" or plan.backup is None:
        raise OutputError(f"replacing needs a replace plan, got {plan.kind}")
    target = plan.target
    root = root_of(target, plan.relative)
    check_writable(target, root)
    if fence is not None:
        fence()
    with (
        open_directory(target.parent, root) as directory,
        _opened_target(directory, target.name, root) as (fd, meta, seen),
    ):
        content = os.fstat(fd)
        current = signature_of_fd(fd)
        record = _record_for_own_output(plan, current)
        if record is None:
            record = _back_up(plan, fd, current, meta)
        else:
            log.info("replace_rewrite_own_output", path=str(target), backup=str(record.backup))

    def staged(output: FileSignature) -> None:
        save_record(replace(record, pending=output))

    output = write(ReplaceWrite(
        original=record.backup,
        root=root,
        mode=stat.S_IMODE(content.st_mode),
        owner=(content.st_uid, content.st_gid),
        fence=unchanged_fence(target, seen, fence),
        staged=staged,
    ))
    record = replace(record, output=output, pending=None)
    save_record(record)
    log.info("replace_committed", path=str(target), backup=str(record.backup))
    return record


def commit_replace(
    plan: OutputPlan,
    rgb: np.ndarray,
    like: Path | None,
    provenance: Mapping[str, Any] | None,
    *,
    quality: int | None = None,
    fence: Fence | None = None,
) -> ReplaceRecord:
    """Replace the still `plan.target` with `rgb` (`replace_target`), its metadata from
    `like` and lmd's `provenance` in its XMP; returns the record."""

    def write(how: ReplaceWrite) -> FileSignature:
        return write_image(
            plan.target,
            rgb,
            like=like,
            quality=quality,
            xmp_provenance=provenance,
            mode=how.mode,
            owner=how.owner,
            keep_live_identity=True,
            create_dirs=False,
            root=how.root,
            fence=how.fence,
            staged=how.staged,
        )

    return replace_target(plan, write, fence=fence)


def _record_for_own_output(plan: OutputPlan, current: FileSignature) -> ReplaceRecord | None:
    """The record whose output the target currently is, if any.

    A run that crashed between the rename and the record update left its output named as the
    record's `pending` (or, in records written before lmd kept that, only lmd's XMP provenance
    in the file when the record has no output). Backing that up as "the original" would lose
    the real original on revert.
    """
    assert plan.backup is not None
    for r in iter_records(plan.backup.parent, plan.target, recursive=False):
        if r.names_output(current.content_hash, plan.target):
            return r
        if (
            r.output is None
            and not hashing.same_content(
                r.original.content_hash, current.content_hash, plan.target
            )
            and is_own_output(plan.target)
        ):
            return r
    return None


def _back_up(plan: OutputPlan, fd: int, current: FileSignature, meta: FileMeta) -> ReplaceRecord:
    """Copy the open target into the backup (unless an identical backup is there) and record it."""
    assert plan.backup is not None
    backup = plan.backup
    backup.parent.mkdir(parents=True, exist_ok=True)
    if not (backup.is_file() and hashing.matches(backup, current.content_hash)):
        content = os.fstat(fd)
        copied = atomic_write(
            backup,
            lambda out: copy_fd(fd, out),
            mode=stat.S_IMODE(content.st_mode),
            mtime_ns=content.st_mtime_ns,
            owner=(content.st_uid, content.st_gid),
        )
        if copied.content_hash != current.content_hash:
            with contextlib.suppress(FileNotFoundError):
                backup.unlink()
            raise OutputError(f"backup of {plan.target} changed while copying; retry later")
    record = ReplaceRecord(
        target=plan.target,
        backup=backup,
        relative=plan.relative,
        original=current,
        output=None,
        created=_now(),
        meta=meta,
    )
    save_record(record)
    return record


__all__ = [
    "RECORD_SUFFIX",
    "ReplaceRecord",
    "ReplaceWrite",
    "Staged",
    "commit_replace",
    "is_own_output",
    "iter_records",
    "load_record",
    "record_path_for",
    "replace_target",
    "save_record",
]
