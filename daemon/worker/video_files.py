"""The worker's files for a video job: its inputs checked and decoded, its output planned from
the job row and written as planned (a sidecar movie in the output tree, or the MOV replaced
with its backup kept).

The same rules as a still's (`daemon.worker.files`): the plan comes from the output pinned on
the job and is checked before any frame is restored; inputs are read by content (a touched file
is still the input); a MOV the library holds as lmd's output is restored from its backed-up
original, never from the output; writes stay below their root and commit through the worker's
fence; a write whose result could not be recorded is taken back (`undo`).

A Motion Photo's video lives inside its photo: it is read from there and its restored video is
a sidecar MP4 named after the photo (`IMG_1234.MP.jpg` -> `IMG_1234.MP.mp4` in the tree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from core import hashing
from core.video import Keyframe
from daemon.files.errors import UnreadableFile
from daemon.files.opening import confined_to
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.library.matching import distances, nearest_index
from daemon.library.media import (
    load_still,
    load_still_small,
    read_embedded_video,
    small_frames,
    upright_frames,
)
from daemon.output import (
    Fence,
    OutputError,
    OutputPlan,
    check_writable,
    plan_output,
    signature_of,
)
from daemon.output.video import SourceMovie, write_video
from daemon.output.video_replace import commit_video_replace
from daemon.store import Job
from daemon.worker.files import (
    BadOutputPlan,
    InputsChanged,
    LibraryFiles,
    kept_original_video,
    undo_write,
    write_root,
)
from daemon.worker.records import OutputIndex, record_of_commit

#: width the key photo and frames are compared at when the video records no key time
MATCH_WIDTH = 64
#: what a Motion Photo's restored video is written as (it is not re-embedded)
MOTION_SUFFIX = ".mp4"

Frames = Callable[[Path], Iterable[np.ndarray]]
"""The restored frames, given the path of the original movie to decode."""


def embedded(asset: LiveAsset) -> bool:
    return asset.video_offset is not None


def video_target(asset: LiveAsset) -> Path:
    """The file the video's output stands for: the MOV, or for a Motion Photo an MP4 named
    after the photo (the photo itself is never a video destination)."""
    if asset.video is None:
        raise BadOutputPlan("the job's asset has no video")
    return asset.video.with_suffix(MOTION_SUFFIX) if embedded(asset) else asset.video


def _same_content(path: Path, recorded: FileSignature) -> bool:
    """`path` holds `recorded`'s content (same size and mtime, or, when only the stat changed,
    the same digest: a touch, a copy)."""
    try:
        st = path.stat()
        if st.st_size != recorded.size:
            return False
        return st.st_mtime_ns == recorded.mtime_ns or hashing.matches(path, recorded.content_hash)
    except (OSError, hashing.UnknownDigest):
        return False


class VideoFiles:
    """The files of video jobs, on the real library and output tree. `index` (the store) tells
    lmd's own outputs from other files by content."""

    def __init__(self, index: OutputIndex | None = None) -> None:
        self.index = index

    def plan(self, job: Job) -> OutputPlan:
        spec = job.output
        if spec is None:
            raise BadOutputPlan(f"video job {job.id} has no pinned output")
        asset = LiveAsset.from_dict(job.payload)
        try:
            plan = plan_output(video_target(asset), spec.root, spec,
                               references=(asset.reference,))
        except OutputError as exc:
            raise BadOutputPlan(f"bad output setting: {exc}") from exc
        root = write_root(job, plan)
        check_writable(plan.destination, root if root.exists() else None)
        return plan

    def output_in_place(self, job: Job) -> bool:
        return LibraryFiles(self.index).output_in_place(job)

    def check_inputs(self, job: Job) -> LiveAsset:
        """The asset to restore from: its key photo and video as the job recorded them, the
        video taken from its backed-up original where the library holds lmd's output in its
        place (a redo). `InputsChanged` when an input changed or is gone."""
        assert job.output is not None
        asset = LiveAsset.from_dict(job.payload)
        reference = asset.signatures.get("reference")
        if reference is None or not _same_content(asset.reference, reference):
            raise InputsChanged(f"the reference {asset.reference.name} changed or moved since "
                                "the scan")
        recorded = asset.signatures.get("video")
        if embedded(asset):  # the video is inside the photo: the reference's signature
            recorded = reference
        if asset.video is None or recorded is None:
            raise InputsChanged("the job's asset has no video")
        if _same_content(asset.video, recorded):
            return asset
        if embedded(asset):
            raise InputsChanged(f"the Motion Photo {asset.video.name} changed since the scan")
        kept = kept_original_video(asset.video, recorded, job, self.index)
        if kept is None:
            raise InputsChanged(f"the video {asset.video.name} changed or moved since the scan "
                                "(and is not lmd's output with its original in the backups)")
        return dataclasses.replace(asset, video=kept)

    def confined(self, job: Job) -> AbstractContextManager[object]:
        """Every read of the inputs inside it confined to the job's library and its backup
        directory (where a redo reads a replaced MOV's original), as a still's are
        (`LibraryFiles.load`): a link swapped in since the scan, leading anywhere else, is
        refused (`UnreadableFile`), never followed. The frames are read inside `write`, so it
        runs inside this too."""
        assert job.output is not None
        roots = [job.output.root]
        if job.output.backup_dir is not None:
            roots.append(job.output.backup_dir)
        return confined_to(*roots)

    def source(self, asset: LiveAsset) -> SourceMovie:
        """The original movie (a file, or the bytes embedded in a Motion Photo)."""
        assert asset.video is not None
        if embedded(asset):
            assert asset.video_offset is not None and asset.video_length is not None
            return SourceMovie(
                data=read_embedded_video(asset.video, asset.video_offset, asset.video_length)
            )
        return SourceMovie(path=asset.video)

    def keyframe(self, asset: LiveAsset, times: list[float]) -> Keyframe:
        """The key photo, at the frame of its time in the video (T0); matched against the
        frames when the video records none."""
        key = load_still(asset.reference, dtype=np.uint8)
        if asset.t0 is not None:
            return Keyframe(key, nearest_index(times, asset.t0))
        assert asset.video is not None
        small = small_frames(asset.video, MATCH_WIDTH, offset=asset.video_offset,
                             length=asset.video_length)
        if not small:
            raise UnreadableFile("video has no frames")
        target = load_still_small(asset.reference, MATCH_WIDTH)
        return Keyframe(key, int(np.argmin(distances(target, [f for _, f in small]))))

    def frames(self, asset: LiveAsset, original: Path) -> Iterator[np.ndarray]:
        """The original's frames, upright (a Motion Photo's from inside its photo)."""
        if embedded(asset):
            assert asset.video is not None
            return upright_frames(asset.video, offset=asset.video_offset,
                                  length=asset.video_length)
        return upright_frames(original)

    def write(
        self, plan: OutputPlan, job: Job, asset: LiveAsset, frames_of: Frames,
        source: SourceMovie, *, fence: Fence | None = None,
    ) -> FileSignature:
        """Write the restored movie as planned; `fence` runs immediately before the rename."""
        if plan.kind == "replace":
            record = commit_video_replace(plan, frames_of, fence=fence)
            return record.output or signature_of(plan.destination)
        assert asset.video is not None
        return write_video(
            plan.destination, frames_of(asset.video), source, root=write_root(job, plan),
            create_dirs=True, fence=fence,
        )

    def record_of(self, plan: OutputPlan, job: Job, written: FileSignature) -> str | None:
        """The backup record of the MOV's replace commit, for the index (`record_of_commit`, a
        still's too: found by the original MOV it keeps where a worker that lost its lease
        saved over it after its successor)."""
        original = LiveAsset.from_dict(job.payload).signatures.get("video")
        return record_of_commit(plan, written, original)

    def undo(self, plan: OutputPlan, job: Job, written: FileSignature) -> bool:
        """Take back a write whose result could not be recorded, while the destination still
        holds it: the original MOV back in place, or the sidecar removed (`undo_write`, the
        stills' own)."""
        return undo_write(plan, job, written)
