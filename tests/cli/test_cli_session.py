"""A first session with lmd, piped as a script would run it (issue 13 items 4, 5 and 7):
work, look, revert, look again.

One sample library in replace mode, so that revert has something to put back. `work`, the
listing and `revert` run through the real `lmd` script (a subprocess each, about a second of
start-up); the looks in between call `main`, the function that script runs, in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from tests.cli.conftest import scan_in_process
from tests.foundation.lmd_entry import flat, run_lmd


@pytest.fixture
def replace_mode(here: Path) -> Path:
    with here.open("a") as config:
        config.write('[output]\nmode = "replace"\n')
    return here


def test_work_look_revert_and_the_history(
    tmp_path: Path, replace_mode: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library = tmp_path / "library" / "2026"
    env = {"LMD_STATE_DIR": str(tmp_path / "state")}  # the same as ./lmd.toml says
    assert scan_in_process(replace_mode) == 2

    # piped: one plain line per finished job, then the count; nothing else on stdout
    work = run_lmd(tmp_path, "work", env=env)
    assert work.returncode == 0, work.stderr
    lines = work.stdout.splitlines()
    assert [line.split(" in ")[0] for line in lines[:2]] == [
        "job 1 of 2: succeeded 2026/IMG_1201", "job 2 of 2: succeeded 2026/IMG_1202"]
    assert lines[0].split(" -> ")[1].split(";")[0] == str(library / "IMG_E1201.HEIC")
    assert lines[2:] == ["ran 2 job(s)"]
    assert "\x1b[" not in work.stdout + work.stderr

    # the worker row says the worker is gone; no failures: the listing says so, stdout empty
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(w["state"], w["stale"]) for w in status["worker"]] == [("stopped", False)]
    assert main(["jobs", "list", "--state", "failed"]) == 0
    out, err = capsys.readouterr()
    assert (out, flat(err)) == ("", "no failed jobs")

    # piped tables are tab-separated with whole values: a long path is not cut at 80 columns
    listed = run_lmd(tmp_path, "jobs", "list", env=env)
    rows = [line.split("\t") for line in listed.stdout.splitlines()]
    assert rows[0] == ["id", "state", "attempts", "path", "updated", "error"]
    assert sorted(row[3] for row in rows[1:]) == [str(library / "IMG_E1201.HEIC"),
                                                   str(library / "IMG_E1202.HEIC")]

    reverted = run_lmd(tmp_path, "revert", "--all", "--json", env=env)
    assert reverted.returncode == 0, reverted.stderr
    assert {r["result"] for r in json.loads(reverted.stdout)} == {"reverted"}

    assert main(["jobs", "show", "1", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert events[-1]["reason"] == f"reverted: the original is back at {library}/IMG_E1201.HEIC"
    assert (events[-1]["from_state"], events[-1]["to_state"]) == ("succeeded", "succeeded")
    assert any(e["reason"].startswith("review: ") for e in events)  # the review decision
