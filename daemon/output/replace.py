"""Replace mode: back the low-quality still up, swap in the restored one, and put it back.

Order of operations, each step crash-safe on its own:
1. copy the target into the state directory (temp, fsync, rename) and check the copy's hash;
2. write a record beside the backup (`<backup>.lmd.json`) naming both files;
3. write the restored still over the target atomically and add its signature to the record.
A crash after 1 or 2 leaves the original in place and a backup to reuse; a crash after 3 leaves
lmd's output, which `revert` recognises by hash (or by its XMP provenance when the record never
got the hash). `revert` refuses to overwrite a file someone edited since, unless forced.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from daemon.files.signature import FileSignature
from daemon.output.atomic import atomic_copy, atomic_write_bytes, sha256_file, signature_of
from daemon.output.errors import OutputError, RevertConflict
from daemon.output.image import read_metadata, write_image
from daemon.output.plan import OutputPlan
from daemon.output.xmp import read_provenance

log = structlog.get_logger(__name__)

RECORD_SUFFIX = ".lmd.json"


@dataclass(frozen=True, slots=True)
class ReplaceRecord:
    """What `lmd revert` needs: the target, its backup, and both contents' signatures."""

    target: Path
    backup: Path
    relative: Path
    original: FileSignature
    output: FileSignature | None
    created: str

    @property
    def record_path(self) -> Path:
        return record_path_for(self.backup)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "backup": str(self.backup),
            "relative": str(self.relative),
            "original": self.original.to_dict(),
            "output": self.output.to_dict() if self.output else None,
            "created": self.created,
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
        )


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
    """True when `path` is lmd's output: its sha256 equals `expected_hash` (the job row's output
    hash) or, without one, its XMP carries lmd provenance."""
    path = Path(path)
    if not path.is_file():
        return False
    if expected_hash:
        return sha256_file(path) == expected_hash
    try:
        return read_provenance(read_metadata(path).xmp) is not None
    except OutputError:
        return False


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def commit_replace(
    plan: OutputPlan,
    rgb: np.ndarray,
    like: Path | None,
    provenance: Mapping[str, Any] | None,
    *,
    quality: int | None = None,
) -> ReplaceRecord:
    """Back up `plan.target`, then atomically replace it with `rgb`; returns the record.

    When the target already is lmd's output from an earlier run (a record's output hash matches),
    the existing backup of the true original is kept and only the output is rewritten.
    """
    if plan.kind != "replace" or plan.backup is None:
        raise OutputError(f"commit_replace needs a replace plan, got {plan.kind}")
    target = plan.target
    try:
        current = signature_of(target)
        st = target.stat()
    except OSError as exc:
        raise OutputError(f"cannot read the target {target}: {exc}") from exc

    record = _record_for_own_output(plan, current)
    if record is None:
        record = _back_up(plan, current)
    else:
        log.info("replace_rewrite_own_output", path=str(target), backup=str(record.backup))

    output = write_image(
        target,
        rgb,
        like=like,
        quality=quality,
        xmp_provenance=provenance,
        mode=st.st_mode & 0o7777,
        owner=(st.st_uid, st.st_gid),
        keep_live_identity=True,
    )
    record = replace(record, output=output)
    save_record(record)
    log.info("replace_committed", path=str(target), backup=str(record.backup))
    return record


def _record_for_own_output(plan: OutputPlan, current: FileSignature) -> ReplaceRecord | None:
    """The record whose output the target currently is, if any.

    A record without an output hash is from a run that crashed between the rename and the record
    update; the target then is lmd's output when it differs from the original and carries lmd's
    XMP provenance. Backing that up as "the original" would lose the real original on revert.
    """
    assert plan.backup is not None
    for r in iter_records(plan.backup.parent, plan.target, recursive=False):
        if r.output is not None and r.output.content_hash == current.content_hash:
            return r
        if (
            r.output is None
            and r.original.content_hash != current.content_hash
            and is_own_output(plan.target)
        ):
            return r
    return None


def _back_up(plan: OutputPlan, current: FileSignature) -> ReplaceRecord:
    assert plan.backup is not None
    backup = plan.backup
    backup.parent.mkdir(parents=True, exist_ok=True)
    if not (backup.is_file() and sha256_file(backup) == current.content_hash):
        copied = atomic_copy(plan.target, backup)
        if copied.content_hash != current.content_hash:
            with contextlib.suppress(FileNotFoundError):
                backup.unlink()
            raise OutputError(f"backup of {plan.target} changed while copying; retry later")
    if sha256_file(backup) != current.content_hash:
        raise OutputError(f"backup {backup} does not match {plan.target}")
    record = ReplaceRecord(
        target=plan.target,
        backup=backup,
        relative=plan.relative,
        original=current,
        output=None,
        created=_now(),
    )
    save_record(record)
    return record


def revert(record: ReplaceRecord, *, force: bool = False) -> FileSignature:
    """Put the backed-up original back in place of lmd's output, atomically.

    Refuses (`RevertConflict`) when the current file is neither lmd's output nor the original,
    i.e. someone edited it after lmd wrote it, unless `force`. On success the backup and its
    record are removed; returns the restored file's signature.
    """
    target = record.target
    if target.is_file():
        current_hash = sha256_file(target)
        if current_hash == record.original.content_hash:
            log.info("revert_already_original", path=str(target))
            _forget(record)
            return signature_of(target)
        ours = (
            current_hash == record.output.content_hash
            if record.output is not None
            else is_own_output(target)
        )
        if not ours and not force:
            raise RevertConflict(
                f"{target} changed since lmd wrote it (neither lmd's output nor the original); "
                "use --force to put the original back anyway"
            )
    elif not force:
        raise RevertConflict(f"{target} is missing; use --force to restore the original")
    if not record.backup.is_file() or sha256_file(record.backup) != record.original.content_hash:
        raise OutputError(f"backup {record.backup} is missing or damaged; nothing was changed")
    restored = atomic_copy(record.backup, target)
    if restored.content_hash != record.original.content_hash:
        raise OutputError(f"restored {target} does not match the original's hash")
    _forget(record)
    log.info("reverted", path=str(target))
    return restored


def _forget(record: ReplaceRecord) -> None:
    for path in (record.record_path, record.backup):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
