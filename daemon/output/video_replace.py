"""Replace mode for a Live Photo's video: back the MOV up, write the restored one in its place.

The one replace protocol of `daemon.output.replace` (`replace_target`): the MOV is copied into
the backups and checked, the record is written beside the backup, the restored movie is encoded
into a temporary file, named in the record, and renamed over the MOV under the fence (the
worker's lease, and the MOV unchanged since it was looked at), then the record names it as the
output. A crash at any point leaves the original MOV in place or lmd's movie with a record
naming it; a redo over lmd's own output keeps the backup of the true original and rewrites only
the output, and `lmd revert` and the worker's undo (`daemon.output.revert`) put the original
back byte for byte without knowing it is a video.

The restored frames are made from the original, never from what the library holds: the caller
gives `frames_of(original)`, called with the backed-up original once it is safe, and the movie
takes its timing, audio and pairing metadata from that original too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import structlog

from daemon.files.signature import FileSignature
from daemon.output.atomic import Fence
from daemon.output.replace import ReplaceRecord, ReplaceWrite, replace_target
from daemon.output.video import SourceMovie, write_video

if TYPE_CHECKING:
    from daemon.output.plan import OutputPlan

log = structlog.get_logger(__name__)


def commit_video_replace(
    plan: OutputPlan,
    frames_of: Callable[[Path], Iterable[np.ndarray]],
    *,
    fence: Fence | None = None,
) -> ReplaceRecord:
    """Back up `plan.target` (a MOV), then atomically replace it with the movie of
    `frames_of(original)`; returns the record naming both.

    `fence` runs before the backup and immediately before the rename. Whatever the frames raise
    (a cancellation, a restorer's error) is raised as it was, with the MOV untouched and the
    backup and its record kept for the next attempt."""

    def write(how: ReplaceWrite) -> FileSignature:
        return write_video(
            plan.target, frames_of(how.original), SourceMovie(path=how.original),
            root=how.root, fence=how.fence, mode=how.mode, owner=how.owner, staged=how.staged,
        )

    record = replace_target(plan, write, fence=fence)
    log.info("video_replace_committed", path=str(plan.target), backup=str(record.backup))
    return record


__all__ = ["commit_video_replace"]
