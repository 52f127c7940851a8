"""Replace mode's records, seen from the worker: where a target's original is kept, whether the
file in the library is lmd's own output, and the record following a still that moved.

Replace mode keeps the original beside a record (`<backup>.lmd.json`, `daemon.output.replace`),
the one source of truth for revert. A job redone in replace mode (reprocess, retry, a crash
retry, a new restorer) must restore from that original, never from the file in the library,
which by then is lmd's own output: `find_original` finds the record for the original the job
names (by its content digest, where replace mode names it; else through the index of outputs
for the file in the library), and `is_lmd_output` tells lmd's output from a person's edit.
When the scanner finds a replaced still under a new path, it updates the index; the record
beside the backup follows here (`follow_moved_records`), since the scanner writes no files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from core import hashing
from daemon.files.signature import FileSignature
from daemon.output import (
    OutputError,
    OutputPlan,
    iter_records,
    load_record,
    read_metadata,
    read_provenance,
)
from daemon.output.plan import relative_to_library
from daemon.output.replace import RECORD_SUFFIX, ReplaceRecord, backup_name, save_record
from daemon.store import Job

log = structlog.get_logger(__name__)


class OutputIndex(Protocol):
    """What the worker reads of the store's index of outputs (`daemon.store.outputs`)."""

    def find_outputs(self, hashes: Iterable[str]) -> Mapping[str, Any]: ...

    def outputs_at(self, path: str) -> list[Any]: ...


class RecordFollower(Protocol):
    def records_to_follow(self) -> list[Any]: ...

    def record_followed(self, output_id: int, target: str) -> None: ...


def record_path(backup_dir: Path, relative: Path, original_hash: str) -> Path:
    """Where replace mode keeps the record of the original with `original_hash` of the target at
    `relative` (the name `daemon.output.plan` gives its backup, plus the record suffix)."""
    name = backup_name(relative.name, original_hash) + RECORD_SUFFIX
    return Path(backup_dir) / relative.parent / name


def _load(path: Path) -> ReplaceRecord | None:
    try:
        return load_record(path)
    except OutputError:
        return None


def follow(record: ReplaceRecord, target: Path) -> ReplaceRecord:
    """The record rewritten (atomically) to name `target`, the still's new path in the same
    library; returned as saved."""
    root = record.root
    moved = dataclasses.replace(
        record, target=Path(os.path.abspath(target)),
        relative=relative_to_library(target, root),
    )
    save_record(moved)
    log.info("replace_record_followed", record=str(record.record_path), target=str(target),
             previous=str(record.target))
    return moved


def find_original(
    target: Path,
    original_hash: str,
    backup_dir: Path | None,
    root: Path,
    index: OutputIndex | None,
    *,
    search_all: bool = True,
) -> ReplaceRecord | None:
    """The record keeping the original with `original_hash` of `target`, with its backup intact,
    or None. Looked for where replace mode names it for the target's path, then through the
    index (the output now at `target`, whose row names its record), then among the records of
    the target's backup folder, and (`search_all`) among all records for one of a still that
    moved away. A record found for another path (the still moved since) is made to follow
    `target`."""
    if backup_dir is None:
        return None
    candidates: list[Path] = []
    try:
        relative = relative_to_library(target, root)
        candidates.append(record_path(backup_dir, relative, original_hash))
    except OutputError:
        relative = None
    for path in [*candidates, *_indexed_records(target, index)]:
        record = _load(path)
        if record is not None and _keeps(record, original_hash):
            return record if record.target == target else follow(record, target)
    if relative is not None:
        folder = Path(backup_dir) / relative.parent
        for record in iter_records(folder, target, recursive=False, unreadable=[]):
            if _keeps(record, original_hash):
                return record
    if not search_all:
        return None
    # last, every record: a still that moved before anything recorded its output (a crash
    # after the rename) is known to no index row; its record names where it was
    for record in iter_records(Path(backup_dir), unreadable=[]):
        if (
            record.target.name == target.name and record.target != target
            and not record.target.exists() and _keeps(record, original_hash)
        ):
            return follow(record, target)
    return None


def _indexed_records(target: Path, index: OutputIndex | None) -> Iterator[Path]:
    """The records the index knows for `target` (read lazily: only when the record is not
    where replace mode names it): that of the output now there, then those of every output
    lmd last knew at that path (the still may hold an output a crash kept from the index)."""
    if index is None:
        return
    try:
        current = hashing.digest_file(target)
    except OSError:
        current = None
    row = index.find_outputs([current]).get(current) if current else None
    if row is not None and getattr(row, "record", None):
        yield Path(row.record)
    for other in index.outputs_at(str(target)):
        if other.record:
            yield Path(other.record)


def _keeps(record: ReplaceRecord, original_hash: str) -> bool:
    """The record is of that original, and its backup still holds it byte for byte."""
    if record.original.content_hash != original_hash:
        return False
    try:
        return record.backup.is_file() and hashing.matches(record.backup, original_hash)
    except OSError:
        return False


def is_lmd_output(
    path: Path, current: FileSignature, record: ReplaceRecord | None,
    index: OutputIndex | None, job: Job | None = None,
) -> bool:
    """Whether the file at `path` (with signature `current`) is lmd's own output: its content is
    in the index, or is the output `record` names. A write cut short between its rename and the
    record's update (a crash, a lost lease) left an output nothing recorded; it is recognised by
    its XMP provenance: any, where the record never named an output, else one written by `job`
    under a later claim than the job's last recorded success (a person's edit of a recorded
    output keeps that output's claim, so it is never taken for lmd's)."""
    if index is not None and index.find_outputs([current.content_hash]):
        return True
    if record is None:
        return False
    if record.names_output(current.content_hash, path):
        return True
    try:
        provenance = read_provenance(read_metadata(path).xmp)
    except OutputError:
        return False
    if provenance is None:
        return False
    if record.output is None:
        return True
    return job is not None and _later_claim(provenance, job)


def _later_claim(provenance: Mapping[str, Any], job: Job) -> bool:
    """The provenance names `job`, under a claim later than its last recorded success."""
    try:
        if int(provenance.get("job_id", -1)) != job.id:
            return False
        claim = int(provenance.get("claim", -1))
        recorded = (job.provenance or {}).get("claim")
        return recorded is None or claim > int(recorded)
    except (TypeError, ValueError):
        return False


def note_output(record: ReplaceRecord, current: FileSignature) -> ReplaceRecord:
    """Make `record` name the output now at its target (known to be lmd's: `is_lmd_output`), so
    that replace mode recognises it and keeps the backup of the true original instead of
    taking lmd's output for a new original. A record can lag behind when a worker that lost its
    lease saved it after its successor."""
    if record.output is not None and record.output.content_hash == current.content_hash:
        return record
    noted = dataclasses.replace(record, output=current, pending=None)
    save_record(noted)
    return noted


def record_for_output(folder: Path, target: Path, written: FileSignature) -> ReplaceRecord | None:
    """The record in `folder` whose output is `written` at `target` (what a commit just saved)."""
    for record in iter_records(folder, target, recursive=False, unreadable=[]):
        if record.output is not None and record.output.content_hash == written.content_hash:
            return record
    return None


def record_of_commit(
    plan: OutputPlan, written: FileSignature, original: FileSignature | None
) -> str | None:
    """The backup record of the replace commit that wrote `written` (None for other plans), for
    the index of outputs (revert and `follow_moved_records` find the record through it): the one
    naming `written` as its output, else, where another writer saved over it since (a worker
    that lost its lease, saving after its successor), the one keeping `original`, what the job
    replaces. Stills and MOVs alike: one replace protocol. Nothing is written here: this runs
    before the success is recorded, possibly in a worker that lost its lease; a record that lags
    is brought up to date by whoever next relies on it (a redo's input check, `lmd revert`)."""
    if plan.kind != "replace" or plan.backup is None:
        return None
    record = record_for_output(plan.backup.parent, plan.target, written)
    if record is None and original is not None:
        record = next(
            (r for r in iter_records(plan.backup.parent, plan.target, recursive=False,
                                     unreadable=[])
             if r.original.content_hash == original.content_hash),
            None,
        )
    return None if record is None else str(record.record_path)


def follow_moved_records(store: RecordFollower) -> int:
    """Rewrite every record whose replaced still the scanner found under a new path (the index
    says where); returns how many followed. A record that cannot be read or written is left
    for the next round, with a warning."""
    followed = 0
    for row in store.records_to_follow():
        record = _load(Path(row.record))
        if record is None:
            log.warning("replace_record_unreadable", record=row.record)
            continue
        try:
            follow(record, Path(row.path))
        except OutputError as exc:
            log.warning("replace_record_not_followed", record=row.record, error=str(exc))
            continue
        store.record_followed(row.id, row.path)
        followed += 1
    return followed
