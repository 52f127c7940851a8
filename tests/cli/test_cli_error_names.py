"""An `lmd:` error line shows a name that is not UTF-8 in the escaped form every other line
uses (`no\\xffpe`, which `$'no\\xffpe'` types back), not as Python's `\\udcff`; a message of
several lines keeps its lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.cli import main
from tests.foundation.lmd_entry import run_lmd


def test_a_missing_path_that_is_not_utf8_is_shown_escaped(tmp_path: Path) -> None:
    missing = tmp_path / os.fsdecode(b"no\xffpe")
    done = run_lmd(tmp_path, "scan", str(missing))
    assert done.returncode == 1
    assert done.stderr.strip() == f"lmd: {tmp_path}/no\\xffpe does not exist"


def test_a_message_of_several_lines_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text('[worker]\nmax_attempts = 0\npoll_seconds = 0\n')
    monkeypatch.setenv("LMD_CONFIG", str(config))
    assert main(["config", "show"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "lmd: invalid configuration:"
    assert [line.split(" = ")[0] for line in lines[1:]] == [
        "  worker.max_attempts", "  worker.poll_seconds"
    ]
