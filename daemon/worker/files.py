"""The worker's files: checking and decoding a job's inputs, planning its output from the job
row, and writing the restored still as planned.

The plan comes from the output pinned on the job (`Job.output`), never from the settings
current when the worker runs, and it is made and checked before the restoration starts: a job
whose output cannot be planned (no pinned output, a reference original as destination, a bad
suffix...: `BadOutputPlan`) or never written (a read-only library, a name too long, a file or a
symlink in the way: `daemon.output.PermanentOutputError`) is refused before any pixel is
computed. Writes stay below their root (the output tree, or the library) without following a
symlink, and commit only through the worker's fence (its lease, checked immediately before the
rename); a write whose result could not be recorded is taken back (`undo`).

Inputs are read as the job names them, by content: a touched file (new mtime, same digest) is
still the input; in replace mode, where the library holds lmd's own output in the target's
place, the target is read from its backed-up original (`daemon.worker.records`), so a redo
never restores lmd's output, and a job whose original cannot be found is skipped, not run on it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from core import hashing
from daemon.files.errors import UnreadableFile
from daemon.files.opening import confined_to
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.library.media import decode_frame_at, load_still
from daemon.library.naming import edited_name
from daemon.output import (
    Fence,
    OutputError,
    OutputPlan,
    RevertConflict,
    check_writable,
    commit_replace,
    plan_output,
    signature_of,
    undo_replace,
    write_image,
)
from daemon.output.beneath import fsync_dir, open_directory
from daemon.store import Job
from daemon.worker.interfaces import LoadedInputs
from daemon.worker.records import (
    OutputIndex,
    RecordFollower,
    find_original,
    follow_moved_records,
    is_lmd_output,
    note_output,
    record_for_output,
    record_of_commit,
)

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


class BadOutputPlan(Exception):
    """The job's output cannot be planned; retrying cannot help (not retryable)."""


#: the inputs a job reads from disk by path (the AAE's time is already in the payload)
_READ_ROLES = ("reference", "video", "target")


def _unchanged(path: Path, recorded: FileSignature) -> FileSignature | None:
    """`recorded` when `path` still holds that content (the same size and mtime, or, when only
    the stat changed, the same digest: a touch, a copy), else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    if st.st_size != recorded.size:
        return None
    if st.st_mtime_ns == recorded.mtime_ns:
        return recorded
    try:
        same = hashing.matches(path, recorded.content_hash)
    except (OSError, hashing.UnknownDigest):
        return None
    return FileSignature(st.st_size, st.st_mtime_ns, recorded.content_hash) if same else None


def load_inputs(asset: LiveAsset) -> LoadedInputs:
    """Decode what the restorer needs; raises `UnreadableFile` with a reason on bad input.

    Stills stay 8-bit: a restorer that streams tiles keeps them so (a 108 MP reference is
    324 MB, not 1.3 GB), and `core.restore` converts them to float32 for the others."""
    reference = load_still(asset.reference, dtype=np.uint8)
    if asset.target is not None:
        target = load_still(asset.target, dtype=np.uint8)
        like = asset.target
    elif asset.video is not None and asset.t1 is not None:
        target = decode_frame_at(
            asset.video, asset.t1, offset=asset.video_offset, length=asset.video_length
        )
        like = asset.reference
    else:
        raise UnreadableFile("asset has neither a target still nor a video frame time")
    reference_lq = None
    if asset.video is not None and asset.t0 is not None:
        reference_lq = decode_frame_at(
            asset.video, asset.t0, offset=asset.video_offset, length=asset.video_length
        )
    return LoadedInputs(target, reference, reference_lq, like)


def output_target(asset: LiveAsset) -> Path:
    """The still the output stands for. Without a target still (the frame comes from the
    video) it is a new file named as Photos names a rendered edit (`IMG_E1234.HEIC` beside the
    reference), so the output reads as the new key photo."""
    if asset.target is not None:
        return asset.target
    return asset.reference.with_name(edited_name(asset.reference.stem) + asset.reference.suffix)


def plan_job_output(job: Job) -> OutputPlan:
    """The destination of `job`'s output, from the output pinned on the job. In replace mode
    the backup is named after what the target holds now (a backup is never written over one
    of other content); where that is lmd's output, the commit finds the record keeping the
    original and writes no backup."""
    spec = job.output
    if spec is None:
        raise BadOutputPlan(
            f"job {job.id} was enqueued before lmd pinned the output on each job; "
            "the next scan enqueues its replacement"
        )
    asset = LiveAsset.from_dict(job.payload)
    try:
        return plan_output(output_target(asset), spec.root, spec, references=(asset.reference,))
    except OutputError as exc:
        raise BadOutputPlan(f"bad output setting: {exc}") from exc


def write_root(job: Job, plan: OutputPlan) -> Path:
    """The directory a plan's write stays below: the output tree for tree sidecars, else the
    library (beside and replace outputs live in it)."""
    assert job.output is not None  # planned from it
    if plan.kind == "sidecar-tree" and job.output.tree is not None:
        return Path(job.output.tree)
    return job.output.root


def kept_original_video(
    path: Path, recorded: FileSignature, job: Job, index: OutputIndex | None
) -> Path | None:
    """The backup of the original MOV at `path` with `recorded`'s content, where a video job
    replaced it (`[video]` in replace mode: the library holds lmd's output in its place, known
    to the index or named by the record), else None. Both kinds of job restore from it."""
    assert job.output is not None
    try:
        current = signature_of(path)
    except OSError:
        return None
    record = find_original(path, recorded.content_hash, job.output.backup_dir, job.output.root,
                           index)
    if record is None:
        return None
    indexed = index is not None and bool(index.find_outputs([current.content_hash]))
    named = record.names_output(current.content_hash, path)  # named before its rename too
    if not (indexed or named):
        return None
    note_output(record, current)
    return record.backup


class InputsChanged(Exception):
    """The job's inputs no longer hold what it was enqueued for (skipped: the next scan that
    sees them consistent queues the right work), or its original is nowhere to restore from."""


class LibraryFiles:
    """`JobFiles` on the real library and output tree. `index` (the store) tells lmd's own
    outputs from other files by content."""

    def __init__(self, index: OutputIndex | None = None) -> None:
        self.index = index

    def plan(self, job: Job) -> OutputPlan:
        plan = plan_job_output(job)
        if plan.kind == "replace":
            plan = self._at_kept_original(job, plan)
        root = write_root(job, plan)
        # a root that does not exist yet (a new output tree) has no symlink below it to refuse
        check_writable(plan.destination, root if root.exists() else None)
        return plan

    def _at_kept_original(self, job: Job, plan: OutputPlan) -> OutputPlan:
        """A replace plan whose backup lies in the folder of the record already keeping this
        job's original, where the still moved since it was replaced (its record stays where it
        was written), so the commit finds that record there."""
        assert job.output is not None
        original = LiveAsset.from_dict(job.payload).signatures.get("target")
        if original is None or plan.backup is None:
            return plan
        record = find_original(
            plan.target, original.content_hash, job.output.backup_dir, job.output.root,
            self.index, search_all=False,  # check_inputs looked everywhere (and followed it)
        )
        if record is None or record.backup.parent == plan.backup.parent:
            return plan
        return dataclasses.replace(plan, backup=record.backup.parent / plan.backup.name)

    def check_inputs(self, job: Job) -> LiveAsset:
        """The asset to restore from: the job's inputs as they are on disk (a touched file is
        re-read and accepted when its content is the recorded one), with the target taken from
        its backed-up original where the library holds lmd's own output in its place (a redo:
        reprocess, retry, a crash retry, another restorer or output mode). `InputsChanged`
        when an input changed or is gone, or lmd's output stands where no original is kept."""
        assert job.output is not None
        asset = LiveAsset.from_dict(job.payload)
        paths = {"reference": asset.reference, "video": asset.video}
        for role, path in paths.items():
            recorded = asset.signatures.get(role)
            if path is not None and recorded is not None and _unchanged(path, recorded) is None:
                kept = kept_original_video(path, recorded, job, self.index) if role == "video" \
                    else None
                if kept is None:
                    raise InputsChanged(f"the {role} {path.name} changed or moved since the scan")
                asset = dataclasses.replace(asset, video=kept)  # its video job replaced the MOV
        recorded = asset.signatures.get("target")
        if asset.target is None or recorded is None or _unchanged(asset.target, recorded):
            return asset
        record = find_original(
            asset.target, recorded.content_hash, job.output.backup_dir, job.output.root,
            self.index,
        )
        try:
            current = signature_of(asset.target)
        except OSError as exc:
            raise InputsChanged(f"the target {asset.target.name} is gone ({exc})") from None
        if not is_lmd_output(asset.target, current, record, self.index, job):
            raise InputsChanged(f"the target {asset.target.name} changed since the scan")
        if record is None:
            raise InputsChanged(
                f"{asset.target.name} is lmd's output and its original is not in the backups;"
                " lmd never restores its own output"
            )
        if job.output.mode == "replace":
            note_output(record, current)
        return dataclasses.replace(asset, target=record.backup)

    def output_in_place(self, job: Job) -> bool:
        """Whether the output the job recorded is still where it was written, unchanged (a
        reprocess without --force then has nothing to do)."""
        if not job.output_path or not job.output_signature:
            return False
        try:
            recorded = FileSignature.from_dict(job.output_signature)
        except (KeyError, TypeError, ValueError):
            return False
        return _unchanged(Path(job.output_path), recorded) is not None

    def load(self, asset: LiveAsset, job: Job) -> LoadedInputs:
        """`load_inputs` with every read confined to the job's library and its backup
        directory (where a redo reads a replaced still's original): a link swapped in since
        the scan, leading anywhere else, is refused (`UnreadableFile`), never followed."""
        assert job.output is not None  # check_inputs ran first
        roots = [job.output.root]
        if job.output.backup_dir is not None:
            roots.append(job.output.backup_dir)
        with confined_to(*roots):
            return load_inputs(asset)

    def write(
        self, plan: OutputPlan, job: Job, image: np.ndarray, like: Path,
        provenance: dict[str, Any], *, fence: Fence | None = None,
    ) -> FileSignature:
        """`fence` (raising `FenceLost`) runs immediately before the final rename: the worker's
        lease check, or a review decision's claim check."""
        assert job.output is not None  # planned from it
        quality = job.output.quality_for(plan.destination)
        if plan.kind == "replace":
            # the backup and its record beside it are written by commit_replace (the one
            # source of truth for `lmd revert`)
            record = commit_replace(plan, image, like, provenance, quality=quality, fence=fence)
            return record.output or signature_of(plan.destination)
        return write_image(
            plan.destination, image, like=like, xmp_provenance=provenance, quality=quality,
            keep_live_identity=plan.keep_live_identity, root=write_root(job, plan), fence=fence,
        )

    def record_of(self, plan: OutputPlan, job: Job, written: FileSignature) -> str | None:
        """The backup record of the still's replace commit, for the index (`record_of_commit`)."""
        original = LiveAsset.from_dict(job.payload).signatures.get("target")
        return record_of_commit(plan, written, original)

    def undo(self, plan: OutputPlan, job: Job, written: FileSignature) -> bool:
        """Take back a write whose result could not be recorded (`undo_write`)."""
        return undo_write(plan, job, written)

    def follow_records(self, store: RecordFollower) -> int:
        return follow_moved_records(store)


def undo_write(plan: OutputPlan, job: Job, written: FileSignature) -> bool:
    """Take back a write whose result could not be recorded (the lease was lost after the
    rename): the original goes back in place of a replaced still or MOV (from the backup record
    naming `written`, the one protocol both kinds write), a sidecar is removed. Only while the
    destination still holds `written`: a successor's output stays. True when something was
    taken back. Still and video jobs both undo through here (`JobFiles.undo`)."""
    if plan.kind == "replace" and plan.backup is not None:
        record = record_for_output(plan.backup.parent, plan.target, written)
        if record is None:
            return False
        try:
            return undo_replace(record).changed
        except RevertConflict:
            return False
    return discard_output(plan.destination, written, write_root(job, plan))


def discard_output(path: Path, written: FileSignature, root: Path) -> bool:
    """Remove `path` if it still holds `written`, under its directory's lock (the one writers
    take for their fence and rename, so a successor's output is never the one removed)."""
    try:
        with open_directory(path.parent, root) as directory, directory.locked():
            try:
                fd = os.open(path.name, _READ_FLAGS, dir_fd=directory.fd)
            except OSError:
                return False
            try:
                ours = hashing.matches_fd(fd, written.content_hash)
            finally:
                os.close(fd)
            if not ours:
                return False
            os.unlink(path.name, dir_fd=directory.fd)
            fsync_dir(directory.fd)
            return True
    except (OSError, OutputError):
        return False
