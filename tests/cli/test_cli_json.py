"""`--json` on every command that prints something, one documented shape each (issue 13 item
5; the shapes: docs/json-output.md). The walk and the small commands run in-process through
`main`, the function the `lmd` script calls; tests/cli/test_cli_session.py runs the long ones
through the script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer.main

from daemon.cli import app, main

REPO = Path(__file__).resolve().parents[2]
#: Command modules whose commands this test holds to the rule (review, train and video are
#: other people's work in progress).
CHECKED_MODULES = {"config", "jobs", "scan", "restore", "model", "outputs", "service"}
#: Commands that print nothing of their own: `run` writes its log (JSON lines off a terminal).
NO_OUTPUT = {"run"}


def leaf_commands() -> dict[str, typer.main.click.Command]:
    found = {}

    def walk(command, prefix: str) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            path = f"{prefix} {name}".strip()
            if hasattr(sub, "commands"):
                walk(sub, path)
            else:
                found[path] = sub

    walk(typer.main.get_command(app), "")
    return found


def test_every_command_that_prints_takes_json_and_is_documented() -> None:
    doc = (REPO / "docs" / "json-output.md").read_text()
    checked = 0
    for path, command in leaf_commands().items():
        module = command.callback.__module__.rsplit(".", 1)[-1]
        if module not in CHECKED_MODULES or path in NO_OUTPUT:
            continue
        checked += 1
        assert any("--json" in p.opts for p in command.params), f"`lmd {path}` has no --json"
        assert f"`lmd {path}" in doc, f"`lmd {path} --json` is not in docs/json-output.md"
    assert checked >= 18


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.delenv("LMD_DATABASE_URL", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> object:
    assert main([*args, "--json"]) == code, args
    return json.loads(capsys.readouterr().out)


def test_small_commands_print_their_shapes(env: Path, capsys) -> None:
    assert run_json(capsys, "pause") == {"paused": True}
    assert run_json(capsys, "resume") == {"paused": False}
    assert run_json(capsys, "jobs", "retry", "--failed") == {"requeued": 0, "job_id": None}
    shown = run_json(capsys, "reprocess", "--since", "1d", "--dry-run")
    assert shown["dry_run"] is True and shown["requeued"] == 0
    assert set(shown["states"]) == {"succeeded", "failed", "cancelled", "skipped"}
    assert run_json(capsys, "jobs", "list") == []
    checkpoint = run_json(capsys, "model", "check", str(env), code=1)
    assert checkpoint["ok"] is False and checkpoint["errors"] and checkpoint["digest"] is None
