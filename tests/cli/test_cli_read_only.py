"""Commands that only look create nothing (issue 13 item 3): no state directory, no database
file, no migration and no migration log line; a missing or outdated database is said in words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.store.db import create_store_engine, current_revision, head_revision, migrate
from tests.foundation.lmd_entry import flat, run_lmd


def test_status_on_a_fresh_machine_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"  # lmd_env's LMD_STATE_DIR
    done = run_lmd(tmp_path, "status")
    assert done.returncode == 1
    assert flat(done.stderr) == (
        f"lmd: no database yet at {state / 'lmd.sqlite3'}; `lmd scan` or `lmd run` creates it"
    )
    assert "migrat" not in done.stderr
    assert not state.exists()


def test_jobs_list_show_config_and_doctor_create_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, through `main` (the function the `lmd` script calls)."""
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.delenv("LMD_DATABASE_URL", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    for args in (["jobs", "list"], ["jobs", "show", "1"]):
        assert main(args) == 1, args
        assert "no database yet at" in flat(capsys.readouterr().err)
    assert main(["config", "show"]) == 0
    assert capsys.readouterr().out.startswith("setting\tvalue\tsource\n")
    main(["doctor", "--json"])  # exit 1: no library configured
    findings = {f["check"]: f for f in json.loads(capsys.readouterr().out)}
    assert findings["database"]["status"] == "warn"
    assert findings["database"]["detail"].startswith("no database yet at")
    assert not (tmp_path / "state").exists()


def test_an_outdated_database_is_named_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lmd.sqlite3"
    url = f"sqlite:///{path}"
    migrate(url, "0001")
    done = run_lmd(tmp_path, "jobs", "list")
    assert done.returncode == 1
    message = flat(done.stderr)
    assert f"the database at {path} is at revision 0001 and this lmd needs {head_revision()}" in (
        message
    )
    assert "database migrated" not in done.stderr and "backed up" not in done.stderr
    engine = create_store_engine(url)
    try:
        assert current_revision(engine) == "0001"
    finally:
        engine.dispose()
    assert [p.name for p in path.parent.iterdir() if ".bak-" in p.name] == []
