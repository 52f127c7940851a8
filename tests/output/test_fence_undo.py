"""Fenced commits: a writer that lost its lease leaves nothing behind (issue 10, finding 2).

The fence is the worker's lease check. It is called immediately before the rename (after the
temporary file is complete and verified); when it raises, the temporary file is removed and
nothing is renamed. When the rename already happened and recording the result then fails
because the lease was lost, `undo_replace` puts the exact original back.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from PIL import Image

from daemon.output import (
    FenceLost,
    OutputError,
    RevertConflict,
    digest_file,
    iter_records,
    revert,
    undo_replace,
    write_image,
)

from .helpers import gradient, leftovers, xattrs_supported


class LeaseLostAt:
    """A fence that raises on its `nth` call and records what the directory held each time."""

    def __init__(self, directory, nth: int) -> None:
        self.directory, self.nth, self.calls, self.temps = directory, nth, 0, []

    def __call__(self) -> None:
        self.calls += 1
        self.temps.append(leftovers(self.directory))
        if self.calls == self.nth:
            raise FenceLost("lease lost: another worker holds the job")


def test_fence_refusing_the_rename_removes_the_temp_file(tmp_path):
    dest = tmp_path / "IMG_E0001.JPG"
    dest.write_bytes(b"previous")
    fence = LeaseLostAt(tmp_path, nth=1)
    with pytest.raises(FenceLost):
        write_image(dest, gradient(), fence=fence)
    [temps] = fence.temps
    assert len(temps) == 1  # called with the complete temp file in place, just before the rename
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_fence_passing_lets_the_write_through(tmp_path):
    dest = tmp_path / "IMG_E0001.JPG"
    calls = []
    write_image(dest, gradient(), fence=lambda: calls.append(dest.exists()))
    assert calls == [False]  # once, before the rename
    with Image.open(dest) as im:
        assert im.size == (64, 48)


def test_lease_lost_before_the_backup_leaves_no_backup(replace_case):
    original = replace_case.target.read_bytes()
    fence = LeaseLostAt(replace_case.target.parent, nth=1)
    with pytest.raises(FenceLost):
        replace_case.commit(fence=fence)
    assert replace_case.target.read_bytes() == original
    assert list(iter_records(replace_case.out.backup_dir)) == []


def test_lease_lost_just_before_the_rename_leaves_the_target(replace_case):
    target = replace_case.target
    original = target.read_bytes()
    fence = LeaseLostAt(target.parent, nth=2)
    with pytest.raises(FenceLost):
        replace_case.commit(fence=fence)
    assert fence.temps[1] != []  # the second call came with the temp file written
    assert target.read_bytes() == original
    assert leftovers(target.parent) == []
    [record] = list(iter_records(replace_case.out.backup_dir))
    assert record.output is None  # backed up (reusable by the job's new owner), never replaced


def test_undo_after_the_rename_gives_back_the_exact_original(replace_case):
    target = replace_case.target
    os.chmod(target, 0o640)
    os.utime(target, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    with_xattrs = xattrs_supported(target)
    if with_xattrs:
        os.setxattr(target, "user.rating", b"5")
    original = target.read_bytes()
    before = target.stat()

    record = replace_case.commit()
    assert digest_file(target) == record.output.content_hash
    outcome = undo_replace(record)  # the worker's record commit failed: lease lost

    assert outcome.changed
    assert target.read_bytes() == original
    after = target.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    if with_xattrs:
        assert os.getxattr(target, "user.rating") == b"5"
    [kept] = list(iter_records(replace_case.out.backup_dir))
    assert kept.output is None and kept.backup.is_file()

    again = replace_case.commit()  # the job's new owner reuses the backup of the original
    assert again.backup == record.backup
    assert again.original.content_hash == record.original.content_hash
    assert revert(again).changed
    assert target.read_bytes() == original


def test_undo_leaves_a_target_another_writer_replaced_since(replace_case):
    record = replace_case.commit()
    newer = replace_case.commit(gradient()[::-1].copy())  # the job's new owner committed since
    with pytest.raises(RevertConflict, match="no longer the output"):
        undo_replace(record)
    assert digest_file(replace_case.target) == newer.output.content_hash


def test_undo_needs_a_committed_output(replace_case):
    record = replace_case.commit()
    with pytest.raises(OutputError, match="nothing to undo"):
        undo_replace(dataclasses.replace(record, output=None))
    assert digest_file(replace_case.target) == record.output.content_hash
