"""`lmd status` shows the publish outbox: deliveries waiting and given up, as a line and in
`--json` (docs/json-output.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from daemon.cli import jobs as jobs_cli
from daemon.cli.context import CliState
from daemon.store import open_store


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}"
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LMD_DATABASE_URL", url)
    return url


def status(*args: str) -> str:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState()

    jobs_cli.register(app)
    result = CliRunner().invoke(app, ["status", *args])
    assert result.exit_code == 0, result.output
    return result.output


def seed(url: str) -> None:
    """Two Immich uploads waiting (one of them retrying), one PhotoPrism index given up."""
    with open_store(url) as store:
        store.add_outbox("immich", "immich.upload", {"output": "/a"}, job_id=None)
        retrying = store.add_outbox("immich", "immich.upload", {"output": "/b"})
        assert retrying is not None
        assert store.claim_outbox(["immich"], "w", 60) is not None
        later = datetime.now(UTC) + timedelta(minutes=5)
        claimed = store.list_outbox()[0]
        store.outbox_retry_later(claimed.id, "w", "503 Service Unavailable", later)
        store.add_outbox("photoprism", "photoprism.index", {"folder": "2026"})
        index = store.claim_outbox(["photoprism"], "w", 60)
        assert index is not None
        store.outbox_give_up(index.id, "w", "401 Unauthorized: check photoprism.token")


def test_status_json_counts_deliveries_by_publisher(url: str) -> None:
    seed(url)
    sent = json.loads(status("--json"))["deliveries"]
    assert sent["pending"] == 2 and sent["failed"] == 1
    assert sent["by_publisher"] == {
        "immich": {"pending": 2, "failed": 0}, "photoprism": {"pending": 0, "failed": 1},
    }
    (failed,) = sent["recent_failed"]
    assert failed["publisher"] == "photoprism" and failed["attempts"] == 1
    assert failed["last_error"] == "401 Unauthorized: check photoprism.token"


def test_status_says_what_waits_and_what_was_given_up(url: str) -> None:
    seed(url)
    out = status()
    assert "deliveries: 2 pending, 1 failed" in out
    assert "immich 2 pending, 0 failed" in out and "photoprism 0 pending, 1 failed" in out
    assert "401 Unauthorized" in out


def test_status_has_no_deliveries_line_when_none_wait(url: str) -> None:
    with open_store(url):
        pass
    assert "deliveries" not in status()
    assert json.loads(status("--json"))["deliveries"]["pending"] == 0
