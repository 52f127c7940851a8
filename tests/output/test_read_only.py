"""A read-only library is a clear, permanent failure, and revert says what it changed and what
it did not (issue 10, finding 5: jobs were retried as if transient, with a traceback each, and
`revert --all` reported "reverted" for files it never changed).

Tests run as root here, and root ignores permission bits (chmod 0555 would not stop it), so the
library is made read-only by a read-only bind mount (skipped where mounting is not allowed);
`test_erofs_at_the_rename_is_permanent` simulates EROFS instead and runs everywhere.
"""

from __future__ import annotations

import errno
import os

import pytest

from daemon.output import (
    FenceLost,
    PermanentOutputError,
    ReadOnlyLibrary,
    atomic_write_bytes,
    check_writable,
    commit_replace,
    digest_file,
    iter_records,
    plan_output,
    write_image,
)
from daemon.output import atomic as atomic_module

from .helpers import gradient, leftovers, printed_json, read_only, revert_cli, write_config


def test_replace_on_a_read_only_library_fails_permanently_before_any_backup(replace_case):
    target = replace_case.target
    original = target.read_bytes()
    with read_only(replace_case.lib):
        with pytest.raises(ReadOnlyLibrary, match="library is read-only") as caught:
            replace_case.commit()
        assert isinstance(caught.value, PermanentOutputError)  # the worker does not retry
        with pytest.raises(ReadOnlyLibrary, match="library is read-only"):
            check_writable(target, replace_case.lib)  # before restoring: no wasted run
        beside = target.with_name("IMG_E0001_lmd.JPG")
        with pytest.raises(ReadOnlyLibrary, match="library is read-only"):
            write_image(beside, gradient(), root=replace_case.lib)
    assert target.read_bytes() == original
    assert list(iter_records(replace_case.out.backup_dir)) == []  # nothing to revert later
    assert not beside.exists()


def test_erofs_at_the_rename_is_permanent(tmp_path, monkeypatch):
    """Simulated: the library is remounted read-only between the temporary file and the rename
    (os.replace raises EROFS), which no mount in a test can time."""
    dest = tmp_path / "IMG_E0001.JPG"
    dest.write_bytes(b"previous")

    def erofs(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(atomic_module.os, "replace", erofs)
    with pytest.raises(ReadOnlyLibrary, match="library is read-only"):
        atomic_write_bytes(dest, b"new")
    monkeypatch.undo()
    assert dest.read_bytes() == b"previous"
    assert leftovers(tmp_path) == []


def test_revert_all_reports_unchanged_targets_as_unchanged(replace_case, tmp_path, capsys):
    """A replace that backed up its target but never renamed (lease lost, killed, or an older
    lmd on a read-only library) is "unchanged", and the file is not rewritten."""
    target = replace_case.target
    second = target.with_name("IMG_E0002.JPG")
    second.write_bytes(target.read_bytes()[:-2] + b"\x00\xff\xd9")  # another photo
    second_original = second.read_bytes()
    with pytest.raises(FenceLost):
        replace_case.commit(fence=_lost_at_second_call())
    untouched = os.stat(target)
    commit_replace(plan_output(second, replace_case.lib, replace_case.out), gradient(), second, {})
    config = write_config(tmp_path, replace_case.lib, tmp_path / "state")

    assert revert_cli(["--config", str(config), "revert", "--all", "--json"]) == 0
    results = {e["target"]: e["result"] for e in printed_json(capsys.readouterr().out)}
    assert results == {str(target): "unchanged", str(second): "reverted"}
    now = os.stat(target)
    assert (now.st_ino, now.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)
    assert second.read_bytes() == second_original


def test_revert_on_a_read_only_library_says_it_failed_and_keeps_the_backup(
    replace_case, tmp_path, capsys
):
    record = replace_case.commit()
    config = write_config(tmp_path, replace_case.lib, tmp_path / "state")
    with read_only(replace_case.lib):
        assert revert_cli(["--config", str(config), "revert", "--all", "--json"]) == 1
        captured = capsys.readouterr()
        [entry] = printed_json(captured.out)
        assert entry["result"] == "failed"
        assert "library is read-only" in entry["error"]
    assert digest_file(replace_case.target) == record.output.content_hash
    assert [r.backup for r in iter_records(replace_case.out.backup_dir)] == [record.backup]
    assert revert_cli(["--config", str(config), "revert", "--all"]) == 0  # writable again
    assert digest_file(replace_case.target) == record.original.content_hash


def _lost_at_second_call():
    calls = []

    def fence() -> None:
        calls.append(1)
        if len(calls) == 2:  # the first call is before the backup, the second before the rename
            raise FenceLost("lease lost")

    return fence

