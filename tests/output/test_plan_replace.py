"""plan_output destinations, commit_replace backups, revert and own-output detection."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image

from daemon.output import (
    OutputError,
    ReferenceTargetError,
    RevertConflict,
    apple_content_identifier,
    beside_name,
    commit_replace,
    digest_file,
    is_own_output,
    iter_records,
    plan_output,
    read_metadata,
    revert,
    write_image,
)
from daemon.output.replace import save_record

from .helpers import CID, Out, gradient


@pytest.fixture
def library(tmp_path, apple_source):
    lib = tmp_path / "library"
    (lib / "2024" / "06").mkdir(parents=True)
    src = apple_source("IMG_E1234.HEIC")
    target = lib / "2024" / "06" / "IMG_E1234.HEIC"
    os.replace(src, target)
    reference = lib / "2024" / "06" / "IMG_1234.HEIC"
    reference.write_bytes(b"reference original")
    return lib, target, reference


def test_tree_mirrors_relative_path(library, tmp_path):
    lib, target, ref = library
    plan = plan_output(target, lib, Out(tree=tmp_path / "restored"), references=[ref])
    assert plan.kind == "sidecar-tree"
    assert plan.destination == tmp_path / "restored" / "2024" / "06" / "IMG_E1234.HEIC"
    assert plan.keep_live_identity


def test_beside_name_and_rejected_suffixes(library):
    lib, target, _ = library
    plan = plan_output(target, lib, Out(location="beside"))
    assert plan.destination == target.with_name("IMG_E1234_lmd.HEIC")
    assert not plan.keep_live_identity
    assert beside_name("IMG_1234.JPG", "_restored") == "IMG_1234_restored.JPG"
    for bad in (".lmd", "_HEVC", "a/b", ""):
        with pytest.raises(OutputError):
            beside_name("IMG_1234.JPG", bad)


def test_reference_is_never_a_destination(library, tmp_path):
    lib, target, ref = library
    with pytest.raises(ReferenceTargetError):
        plan_output(ref, lib, Out(mode="replace", backup_dir=tmp_path / "b"), references=[ref])
    tree = tmp_path / "mirror"  # a (mis)configured tree that holds another asset's reference
    with pytest.raises(ReferenceTargetError):
        plan_output(
            target, lib, Out(tree=tree), references=[tree / "2024" / "06" / "IMG_E1234.HEIC"]
        )


def test_outside_library_and_tree_onto_itself(library, tmp_path):
    lib, target, _ = library
    with pytest.raises(OutputError, match="not inside the library"):
        plan_output(tmp_path / "elsewhere.jpg", lib, Out(tree=tmp_path / "t"))
    with pytest.raises(OutputError, match="onto itself"):
        plan_output(target, lib, Out(tree=lib))


def test_replace_backup_revert_roundtrip(library, tmp_path):
    lib, target, ref = library
    out = Out(mode="replace", backup_dir=tmp_path / "state" / "backups")
    original_hash = digest_file(target)
    original_mtime = target.stat().st_mtime_ns
    plan = plan_output(target, lib, out, references=[ref])
    short = original_hash.removeprefix("blake3:")[:8]  # hex digits only, no algorithm name
    assert plan.backup == out.backup_dir / "2024" / "06" / f"IMG_E1234.HEIC.{short}"

    record = commit_replace(plan, gradient(60, 80), target, {"restorer": "guided"})
    assert digest_file(plan.backup) == original_hash
    assert plan.backup.stat().st_mtime_ns == original_mtime
    assert record.output is not None
    assert digest_file(target) == record.output.content_hash
    with Image.open(target) as im:
        assert im.format == "HEIF"
        assert im.size == (80, 60)
    assert apple_content_identifier(read_metadata(target).exif) == CID  # still a Live Photo
    assert ref.read_bytes() == b"reference original"
    assert is_own_output(target, record.output.content_hash)
    assert is_own_output(target)  # by provenance in XMP
    assert not is_own_output(ref)

    [loaded] = list(iter_records(out.backup_dir, target))
    assert loaded == record

    # a second run on lmd's own output keeps the backup of the true original
    plan2 = plan_output(target, lib, out, references=[ref])
    record2 = commit_replace(plan2, gradient(60, 80)[::-1].copy(), target, {"restorer": "x"})
    assert record2.backup == record.backup
    assert record2.original.content_hash == original_hash
    assert len(list(iter_records(out.backup_dir))) == 1

    outcome = revert(record2)
    assert outcome.changed
    assert outcome.signature.content_hash == original_hash
    assert digest_file(target) == original_hash
    assert target.stat().st_mtime_ns == original_mtime
    assert list(iter_records(out.backup_dir)) == []
    assert not record2.backup.exists()


def test_revert_refuses_an_edited_file_unless_forced(library, tmp_path):
    lib, target, _ = library
    out = Out(mode="replace", backup_dir=tmp_path / "backups")
    original = target.read_bytes()
    record = commit_replace(plan_output(target, lib, out), gradient(), target, None)
    target.write_bytes(b"someone edited this")
    with pytest.raises(RevertConflict):
        revert(record)
    assert target.read_bytes() == b"someone edited this"
    revert(record, force=True)
    assert target.read_bytes() == original


def test_revert_is_idempotent_and_checks_backup(library, tmp_path):
    lib, target, _ = library
    out = Out(mode="replace", backup_dir=tmp_path / "backups")
    record = commit_replace(plan_output(target, lib, out), gradient(), target, None)
    record.backup.write_bytes(b"damaged")
    with pytest.raises(OutputError, match="damaged"):
        revert(record)
    assert digest_file(target) == record.output.content_hash  # untouched


def test_sidecar_tree_write_leaves_library_untouched(library, tmp_path):
    lib, target, _ = library
    before = {p: digest_file(p) for p in lib.rglob("*") if p.is_file()}
    plan = plan_output(target, lib, Out(tree=tmp_path / "restored"))
    write_image(plan.destination, gradient(), like=target, keep_live_identity=True)
    assert {p: digest_file(p) for p in lib.rglob("*") if p.is_file()} == before
    assert apple_content_identifier(read_metadata(plan.destination).exif) == CID


def test_failed_replace_keeps_target_and_reuses_backup(library, tmp_path):
    lib, target, _ = library
    out = Out(mode="replace", backup_dir=tmp_path / "backups")
    original = target.read_bytes()
    plan = plan_output(target, lib, out)
    with pytest.raises(OutputError):
        commit_replace(plan, np.full((8, 8, 3), np.nan, np.float32), target, None)
    assert target.read_bytes() == original
    [pending] = list(iter_records(out.backup_dir))
    assert pending.output is None  # backed up, never replaced
    record = commit_replace(plan, gradient(), target, {"restorer": "guided"})
    assert record.backup == pending.backup
    assert len(list(iter_records(out.backup_dir))) == 1


def test_crash_between_rename_and_record_update_is_recognised(library, tmp_path):
    lib, target, _ = library
    out = Out(mode="replace", backup_dir=tmp_path / "backups")
    original_hash = digest_file(target)
    record = commit_replace(plan_output(target, lib, out), gradient(), target, {"restorer": "g"})
    # what the record looks like if the process died right after the rename
    save_record(dataclasses.replace(record, output=None))
    again = commit_replace(plan_output(target, lib, out), gradient(), target, {"restorer": "g"})
    assert again.original.content_hash == original_hash
    assert len(list(iter_records(out.backup_dir))) == 1
    revert(again)
    assert digest_file(target) == original_hash
