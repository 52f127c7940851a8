"""`lmd scan`'s line tells a person what became of a renamed folder of replaced stills: they
are lmd's outputs that moved ("restored, moved"), which the line used to leave out, reading
"0 moved" right after the folder moved."""

from __future__ import annotations

from pathlib import Path

from tests.foundation.lmd_entry import run_lmd


def test_replaced_stills_in_a_renamed_folder_are_counted(tmp_path: Path, configured: Path) -> None:
    with configured.open("a") as config:
        config.write('[output]\nmode = "replace"\n')
    for step in (("scan",), ("work",)):
        done = run_lmd(tmp_path, *step)
        assert done.returncode == 0, done.stderr
    (tmp_path / "library" / "2026").rename(tmp_path / "library" / "2026-trip")
    done = run_lmd(tmp_path, "scan")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "8 files, 2 Live Photos, 2 restorable: 0 enqueued, 0 moved, 0 unreadable; "
        "2 restored stills moved"
    )
