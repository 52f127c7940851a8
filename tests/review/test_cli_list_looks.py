"""`lmd review list` only looks, as `lmd jobs list` does: it created and migrated a database
where there was none (and opened the whole review service, deliveries included, to read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main


def test_review_list_without_a_database_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{tmp_path}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[watcher]\nmode = "off"\n[review]\nrequired = true\n')
    for name in ("LMD_STATE_DIR", "LMD_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    assert main(["review", "list"]) == 1
    _, err = capsys.readouterr()
    assert "no database yet" in err
    assert not (tmp_path / "state" / "lmd.sqlite3").exists()

