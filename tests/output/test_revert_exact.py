"""Revert gives back exactly what was there: bytes, file type, mode, owner, mtime, extended
attributes (issue 10, finding 5); a hard-linked target is never modified through its other link
(issue 11, item 5)."""

from __future__ import annotations

import os
import stat

from daemon.output import digest_file, iter_records, revert

from .helpers import printed_json, revert_cli, write_config, xattrs_supported

MTIME = 1_500_000_000_987_654_321


def test_a_symlink_target_comes_back_from_revert_all_as_the_same_symlink(
    replace_case, tmp_path, capsys
):
    target = replace_case.target
    real = target.parent / "originals" / target.name
    real.parent.mkdir()
    os.replace(target, real)
    referent = real.read_bytes()
    os.symlink("originals/" + target.name, target)
    os.utime(target, ns=(MTIME, MTIME), follow_symlinks=False)

    record = replace_case.commit()
    assert stat.S_ISREG(os.lstat(target).st_mode)  # the link was replaced, not written through
    assert real.read_bytes() == referent
    assert record.meta is not None and record.meta.link == "originals/" + target.name

    config = write_config(tmp_path, replace_case.lib, tmp_path / "state")
    assert revert_cli(["--config", str(config), "revert", "--all", "--json"]) == 0
    assert [e["result"] for e in printed_json(capsys.readouterr().out)] == ["reverted"]
    assert os.path.islink(target)
    assert os.readlink(target) == "originals/" + target.name
    assert os.lstat(target).st_mtime_ns == MTIME
    assert real.read_bytes() == referent
    assert list(iter_records(replace_case.out.backup_dir)) == []


def test_mode_owner_mtime_and_xattrs_come_back(replace_case):
    target = replace_case.target
    os.chmod(target, 0o604)
    as_root = os.geteuid() == 0
    if as_root:
        os.chown(target, 1234, 2345)
    with_xattrs = xattrs_supported(target)  # the xattr part is skipped where tmp has none
    if with_xattrs:
        os.setxattr(target, "user.xdg.tags", b"beach,2024")
        os.setxattr(target, "user.binary", bytes(range(256)))
    os.utime(target, ns=(MTIME, MTIME))
    original = target.read_bytes()

    record = replace_case.commit()
    assert digest_file(target) == record.output.content_hash
    assert target.stat().st_mtime_ns != MTIME
    assert revert(record).changed

    st = target.stat()
    assert target.read_bytes() == original
    assert stat.S_IMODE(st.st_mode) == 0o604
    assert st.st_mtime_ns == MTIME
    if as_root:
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    if with_xattrs:
        assert os.getxattr(target, "user.xdg.tags") == b"beach,2024"
        assert os.getxattr(target, "user.binary") == bytes(range(256))


def test_a_hard_linked_target_is_never_changed_through_its_other_link(replace_case):
    target = replace_case.target
    other = replace_case.lib / "elsewhere" / "same-photo.JPG"
    other.parent.mkdir()
    os.link(target, other)
    original = target.read_bytes()
    inode = other.stat().st_ino

    record = replace_case.commit()
    assert digest_file(target) == record.output.content_hash
    assert other.read_bytes() == original  # replaced by rename: a new inode for the target
    assert other.stat().st_ino == inode and target.stat().st_ino != inode
    assert revert(record).changed
    assert target.read_bytes() == original
    assert other.read_bytes() == original
