"""A first session with lmd through the real `lmd` script, piped as a script would run it
(issue 13 items 4, 5 and 7): scan, work, look, revert, look again.

One sample library in replace mode, so that revert has something to put back; each command is
one subprocess (about a second of start-up each), so the assertions are grouped per command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.foundation.lmd_entry import run_lmd


@pytest.fixture
def replace_mode(configured: Path) -> Path:
    with configured.open("a") as config:
        config.write('[output]\nmode = "replace"\n')
    return configured


def test_scan_work_revert_and_the_history(tmp_path: Path, replace_mode: Path) -> None:
    assert run_lmd(tmp_path, "scan").returncode == 0
    work = run_lmd(tmp_path, "work")
    assert work.returncode == 0, work.stderr

    reverted = run_lmd(tmp_path, "revert", "--all", "--json")
    assert reverted.returncode == 0, reverted.stderr
    assert {r["result"] for r in json.loads(reverted.stdout)} == {"reverted"}

    shown = run_lmd(tmp_path, "jobs", "show", "1", "--json")
    events = json.loads(shown.stdout)["events"]
    original = tmp_path / "library" / "2026" / "IMG_E1201.HEIC"
    assert events[-1]["reason"] == f"reverted: the original is back at {original}"
    assert (events[-1]["from_state"], events[-1]["to_state"]) == ("succeeded", "succeeded")
