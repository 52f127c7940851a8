"""Writing never follows a symlink out of the library or the output tree, including when a
file or folder is swapped for one between planning and writing (issue 11, item 5).

The swaps are made at fixed points: after planning, and inside the fence, which the writer
calls immediately before its rename (the last moment a swap could still matter).
"""

from __future__ import annotations

import os
import shutil

import pytest

from daemon.output import UnsafePath, check_writable, iter_records, plan_output, write_image

from .helpers import Out, gradient, leftovers


@pytest.fixture
def outside(tmp_path):
    """A folder outside the library and tree holding a file lmd must never touch."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "victim.JPG").write_bytes(b"not lmd's to write")
    return place


def _swap_for_link(path, to) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(to)


def test_target_swapped_for_a_symlink_after_planning_is_refused(replace_case, outside):
    plan = replace_case.plan()
    _swap_for_link(replace_case.target, outside / "victim.JPG")
    with pytest.raises(UnsafePath, match="leaving the library"):
        replace_case.commit()
    assert (outside / "victim.JPG").read_bytes() == b"not lmd's to write"
    assert replace_case.target.is_symlink()
    assert list(iter_records(replace_case.out.backup_dir)) == []  # nothing read from outside
    assert not plan.backup.exists()


def test_tree_folder_swapped_for_a_symlink_after_planning_is_refused(
    tmp_path, replace_case, outside
):
    tree = tmp_path / "tree"
    (tree / "2024").mkdir(parents=True)
    plan = plan_output(replace_case.target, replace_case.lib, Out(tree=tree))
    _swap_for_link(tree / "2024", outside)
    with pytest.raises(UnsafePath, match="symlink"):
        check_writable(plan.destination, tree)
    with pytest.raises(UnsafePath, match="symlink"):
        write_image(plan.destination, gradient(), root=tree)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.JPG"]


def test_library_folder_swapped_before_replacing_is_refused(replace_case, outside):
    replace_case.plan()
    moved = replace_case.lib / "2024-moved"
    os.rename(replace_case.target.parent, moved)
    replace_case.target.parent.symlink_to(moved)  # a symlink inside the library, still refused
    with pytest.raises(UnsafePath, match="symlink"):
        replace_case.commit()
    assert list(iter_records(replace_case.out.backup_dir)) == []


def test_final_name_swapped_at_the_last_moment_is_replaced_not_followed(tmp_path, outside):
    tree = tmp_path / "tree"
    dest = tree / "2024" / "IMG_E0001.JPG"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an earlier output")

    def swap() -> None:  # runs immediately before the rename
        _swap_for_link(dest, outside / "victim.JPG")

    write_image(dest, gradient(), root=tree, fence=swap)
    assert (outside / "victim.JPG").read_bytes() == b"not lmd's to write"
    assert not dest.is_symlink() and dest.stat().st_size > 0
    assert leftovers(dest.parent) == []


def test_folder_swapped_at_the_last_moment_keeps_the_write_inside(tmp_path, outside):
    """The writer renames inside the folder it opened, even if that folder was moved and a
    symlink to elsewhere put at its old path meanwhile."""
    tree = tmp_path / "tree"
    dest = tree / "2024" / "IMG_E0001.JPG"

    def swap() -> None:
        os.rename(tree / "2024", tree / "2024-moved")
        (tree / "2024").symlink_to(outside)

    write_image(dest, gradient(), root=tree, fence=swap)
    assert sorted(p.name for p in outside.iterdir()) == ["victim.JPG"]
    assert (tree / "2024-moved" / "IMG_E0001.JPG").is_file()
    assert leftovers(tree / "2024-moved") == []
