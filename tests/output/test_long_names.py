"""Any name the filesystem allows can be written: temporary, backup and record names are short
(issue 10: a 249-byte name could never be written, the temporary name added 18 bytes, and every
attempt re-ran the whole restoration)."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from daemon.output import (
    TEMP_PREFIX,
    NameTooLong,
    PermanentOutputError,
    atomic_write_bytes,
    check_writable,
    commit_replace,
    digest_file,
    iter_records,
    plan_output,
    revert,
    write_image,
)
from daemon.output.atomic import temp_name_for

from .helpers import Out, gradient, leftovers

NAME_MAX = 255
LONG = "L" * (NAME_MAX - len(".JPG")) + ".JPG"
LONG_UTF8 = "é" * ((NAME_MAX - len(".JPG")) // 2) + "x.JPG"  # cut points fall inside characters


def test_the_long_names_are_at_the_limit():
    assert len(os.fsencode(LONG)) == NAME_MAX
    assert len(os.fsencode(LONG_UTF8)) == NAME_MAX


def test_a_255_byte_name_is_written_in_the_tree(tmp_path):
    tree = tmp_path / "tree"
    dest = tree / "2024" / LONG
    signature = write_image(dest, gradient(), root=tree)
    with Image.open(dest) as im:
        assert im.size == (64, 48)
    assert digest_file(dest) == signature.content_hash
    assert leftovers(dest.parent) == []


@pytest.mark.parametrize("name", [LONG, LONG_UTF8], ids=["ascii", "utf8"])
def test_a_255_byte_name_is_replaced_and_reverted(tmp_path, apple_source, name):
    lib = tmp_path / "library"
    (lib / "2024").mkdir(parents=True)
    target = lib / "2024" / name
    os.replace(apple_source("IMG_E0001.JPG"), target)
    original = target.read_bytes()
    out = Out(mode="replace", backup_dir=tmp_path / "state" / "backups")

    record = commit_replace(plan_output(target, lib, out), gradient(), target, {"restorer": "t"})
    assert len(os.fsencode(record.record_path.name)) <= NAME_MAX
    assert digest_file(target) == record.output.content_hash
    assert digest_file(record.backup) == record.original.content_hash
    [loaded] = list(iter_records(out.backup_dir, target))
    assert loaded.target == target
    assert revert(loaded).changed
    assert target.read_bytes() == original


def test_temp_names_are_short_and_leftovers_are_swept_per_final_name(tmp_path):
    mine = temp_name_for(LONG)
    assert mine.startswith(TEMP_PREFIX) and len(mine) <= 30
    crashed = tmp_path / mine
    crashed.write_bytes(b"half-written by a killed writer")
    other = tmp_path / temp_name_for("IMG_0002.JPG")
    other.write_bytes(b"another destination's write, still live")
    legacy = tmp_path / f"{TEMP_PREFIX}deadbeef-IMG_0003.JPG"  # named before short names
    legacy.write_bytes(b"old style leftover")

    atomic_write_bytes(tmp_path / LONG, b"content")
    assert not crashed.exists()
    assert other.exists()
    atomic_write_bytes(tmp_path / "IMG_0003.JPG", b"content")
    assert not legacy.exists()
    assert leftovers(tmp_path) == [other.name]


def test_a_name_past_the_limit_is_a_permanent_failure_found_before_restoring(tmp_path):
    """A beside name (`<stem>_lmd.JPG`) past NAME_MAX can never be written: the worker learns it
    before restoring (`check_writable`) and as a permanent error, so it is not retried."""
    too_long = tmp_path / ("L" * NAME_MAX + "_lmd.JPG")
    with pytest.raises(NameTooLong, match="name too long"):
        check_writable(too_long)
    with pytest.raises(PermanentOutputError):
        write_image(too_long, gradient())
    assert leftovers(tmp_path) == []
