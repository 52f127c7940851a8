"""`lmd review list` shows a name that is not UTF-8 escaped once, as `lmd jobs list` does
(`album-\\xff\\xfe`): it showed `album-\\\\xff\\\\xfe`, escaped by `clip` and again by the table,
which a person cannot type back."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.logging import configure_logging
from tests.review.helpers import copy_library, scan_and_work, settings_for

ALBUM = os.fsdecode(b"album-\xff\xfe")


def test_review_list_escapes_a_name_once(
    tmp_path: Path, source_library: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    library = copy_library(source_library, tmp_path)
    shutil.move(library / "2026", library / ALBUM)
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{tmp_path / "unused"}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[watcher]\nmode = "off"\n')
    for name in ("LMD_STATE_DIR", "LMD_DATABASE_URL", "LMD_LIBRARY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    configure_logging("warning")  # as `lmd` does: names escaped in log lines too
    scan_and_work(settings_for(tmp_path, library)).close()
    for command in (["review", "list"], ["jobs", "list"]):
        assert main(command) == 0
        out, _ = capsys.readouterr()
        shown = [line for line in out.splitlines() if "IMG_E" in line]
        assert len(shown) == 3 and all("/album-\\xff\\xfe/IMG_E" in line for line in shown), out
