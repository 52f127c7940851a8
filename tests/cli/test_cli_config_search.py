"""Which configuration file applies (issue 13 item 2): `--config`, `$LMD_CONFIG`, `./lmd.toml`,
the user's file, the system's; `lmd config show` names the one used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.settings.load import find_config
from tests.foundation.lmd_entry import run_lmd


def test_config_show_names_the_working_directory_file_before_the_user_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "lmd.toml").write_text("[worker]\nmax_attempts = 4\n")
    user = tmp_path / "xdg-config" / "lmd" / "lmd.toml"  # lmd_env's XDG_CONFIG_HOME
    user.parent.mkdir(parents=True)
    user.write_text("[worker]\nmax_attempts = 9\n")

    done = run_lmd(tmp_path, "config", "show", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["config_file"] == {"value": str(tmp_path / "lmd.toml"),
                                    "source": "working directory"}
    assert shown["worker.max_attempts"] == {"value": 4, "source": f"file {tmp_path / 'lmd.toml'}"}



def test_config_show_table_names_the_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process through `main` (the `lmd` script's function); piped, the table is
    tab-separated: the file's whole path, then where it was found."""
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lmd.toml").write_text("")
    assert main(["config", "show"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["setting", "value", "source"]
    assert lines[1].split("\t") == ["config_file", str(tmp_path / "lmd.toml"), "working directory"]


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    here, home = tmp_path / "here", tmp_path / "home"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.setattr("daemon.settings.load.SYSTEM_CONFIG", tmp_path / "etc.toml")

    assert find_config(None).path is None
    (tmp_path / "etc.toml").write_text("")
    assert find_config(None).found_by == "system file"
    (home / "lmd").mkdir(parents=True)
    (home / "lmd" / "lmd.toml").write_text("")
    assert find_config(None).path == home / "lmd" / "lmd.toml"
    (here / "lmd.toml").write_text("")
    assert find_config(None).path == here / "lmd.toml"
    monkeypatch.setenv("LMD_CONFIG", str(tmp_path / "env.toml"))  # taken as given
    assert find_config(None).path == tmp_path / "env.toml"
    assert find_config(tmp_path / "flag.toml").found_by == "flag --config"
