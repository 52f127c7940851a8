"""Replace mode for a Live Photo's video: back the MOV up, write the restored one in its place.

The same steps and the same record as a replaced still (`daemon.output.replace`), so
`lmd revert` and the worker's undo (`daemon.output.revert`) put the original MOV back byte for
byte without knowing it is a video: 1. the MOV is copied into the backups and checked, 2. the
record is written beside the backup, 3. the restored movie is encoded into a temporary file and
renamed over the MOV under the fence (the worker's lease, and the MOV unchanged since it was
looked at), then the record names the output. A redo over lmd's own output keeps the backup of
the true original and rewrites only the output.

The restored frames are made from the original, never from what the library holds: the caller
gives `frames_of(original)`, called with the backed-up original once it is safe, and the movie
takes its timing, audio and pairing metadata from that original too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import structlog

from daemon.output.atomic import Fence, check_writable, signature_of_fd, unchanged_fence
from daemon.output.beneath import open_directory, root_of
from daemon.output.errors import OutputError
from daemon.output.replace import (
    ReplaceRecord,
    _back_up,
    _opened_target,
    _record_for_own_output,
    save_record,
)
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
    if plan.kind != "replace" or plan.backup is None:
        raise OutputError(f"commit_video_replace needs a replace plan, got {plan.kind}")
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
    if not stat.S_ISREG(content.st_mode):
        raise OutputError(f"{target} is not a regular file")
    output = write_video(
        target,
        frames_of(record.backup),
        SourceMovie(path=record.backup),
        root=root,
        fence=unchanged_fence(target, seen, fence),
        mode=stat.S_IMODE(content.st_mode),
    )
    record = replace(record, output=output)
    save_record(record)
    log.info("video_replace_committed", path=str(target), backup=str(record.backup))
    return record


__all__ = ["commit_video_replace"]
