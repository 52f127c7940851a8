"""On a terminal (a pseudo-terminal in the test; issue 13 items 4 and 5): `lmd work` shows a
bar for the batch ("job 1 of 2") and one per job, tables have boxes, and with NO_COLOR nothing
is coloured — bars, tables, log lines included."""

from __future__ import annotations

import re
from pathlib import Path

from tests.cli.conftest import scan_in_process
from tests.foundation.lmd_entry import lmd_command, lmd_env
from tests.foundation.test_cli_conventions import colour_codes, run_in_terminal

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def test_work_on_a_terminal_shows_bars_and_no_color_holds(
    tmp_path: Path, configured: Path
) -> None:
    lmd = " ".join(lmd_command())
    env = lmd_env(tmp_path, {"TERM": "xterm-256color"})
    env.pop("LMD_STATE_DIR")  # ./lmd.toml names the state directory
    # before the scan: "no database yet", an error line that rich colours
    coloured = run_in_terminal(["sh", "-c", f"{lmd} jobs list"], env, tmp_path)
    assert colour_codes(coloured), "the control run must show colour, or the test proves nothing"

    assert scan_in_process(configured) == 2
    script = f"{lmd} work && {lmd} jobs list"
    shown = run_in_terminal(["sh", "-c", script], {**env, "NO_COLOR": "1"}, tmp_path)
    assert colour_codes(shown) == set(), shown
    text = _CONTROL.sub("", shown)
    assert "job 1 of 2" in text and "job 2 of 2" in text  # the batch bar
    assert "2026/IMG_1201: " in text  # the job's bar: its asset and stage
    assert "job 1 of 2: succeeded 2026/IMG_1201" in text  # a line per finished job
    assert "ran 2 job(s)" in text
    assert "┃ id" in text and "│ succeeded" in text  # jobs list: a table with boxes
