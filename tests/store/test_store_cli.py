"""`lmd status`, `lmd jobs ...`, `lmd reprocess`, `lmd pause/resume` against a real database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import update
from typer.testing import CliRunner

from daemon.cli import jobs as jobs_cli
from daemon.cli.context import CliState, OperationalError
from daemon.store import JobState, open_store
from daemon.store.models import jobs
from daemon.store.states import WorkerState
from tests.store.store_helpers import make_spec


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the settings at a fresh SQLite database; return its URL."""
    url = f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}"
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("LMD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LMD_DATABASE_URL", url)
    return url


def _app() -> typer.Typer:
    """Only this module's commands: the tests do not depend on the other command modules."""
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState()

    jobs_cli.register(app)
    return app


def invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(_app(), list(args))
    return result.exit_code, result.output, result.exception


def _seed(url: str) -> dict[str, int]:
    """One succeeded, one failed (with a library path) and one pending job."""
    with open_store(url) as store:
        ok = store.enqueue(make_spec(key="lib/ok")).job_id
        bad = store.enqueue(make_spec(key="lib/bad", max_attempts=1)).job_id
        store.enqueue(make_spec(key="lib/waiting"))
        for expected, outcome in ((ok, "ok"), (bad, "bad")):
            job = store.claim("w", 60)
            assert job is not None and job.id == expected
            if outcome == "ok":
                store.succeed(job.id, "w", "/out/ok.HEIC", {"size": 1}, {})
            else:
                store.fail(job.id, "w", "decoder exploded")
        store.upsert_worker("box:1", state=WorkerState.IDLE, hostname="box", pid=1, window="always")
        scan = store.start_scan("/photos", "manual")
        store.finish_scan(scan, files_seen=9, assets_found=3, enqueued=3, unreadable=1)
        store.remember_asset("lib/broken", "", {"key": "lib/broken"}, "MOV unreadable", False)
    return {"ok": ok, "bad": bad}


def test_status_json(env: str) -> None:
    ids = _seed(env)
    code, out, _ = invoke("status", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["jobs"] == {
        "pending": 1, "running": 0, "deferred": 0, "succeeded": 1, "failed": 1,
        "cancelled": 0, "skipped": 0,
    }
    [failure] = data["failures"]
    assert failure["job_id"] == ids["bad"] and failure["error"] == "decoder exploded"
    assert failure["path"] == "/photos/lib/bad.HEIC"
    assert data["last_scan"]["files_seen"] == 9
    assert data["worker"][0]["id"] == "box:1" and data["worker"][0]["window"] == "always"
    assert data["restorer"]["name"] == "guided"
    assert data["library_problems"][0]["reason"] == "MOV unreadable"
    assert data["paused"] is False


def test_status_human(env: str) -> None:
    _seed(env)
    code, out, _ = invoke("status")
    assert code == 0
    assert "decoder exploded" in out and "MOV unreadable" in out and "box:1" in out


def test_jobs_list_show_retry_cancel(env: str) -> None:
    ids = _seed(env)
    code, out, _ = invoke("jobs", "list", "--state", "failed", "--json")
    assert code == 0 and [j["id"] for j in json.loads(out)] == [ids["bad"]]
    code, out, _ = invoke("jobs", "show", str(ids["bad"]), "--json")
    shown = json.loads(out)
    assert [e["to_state"] for e in shown["events"]] == ["pending", "running", "failed"]
    code, out, _ = invoke("jobs", "show", str(ids["bad"]))
    assert code == 0 and "decoder exploded" in out and "claimed" in out

    assert invoke("jobs", "retry", str(ids["bad"]))[0] == 0
    with open_store(env) as store:
        assert store.get_job(ids["bad"]).state == JobState.PENDING  # type: ignore[union-attr]
    assert invoke("jobs", "cancel", str(ids["bad"]))[0] == 0
    code, _, exc = invoke("jobs", "cancel", str(ids["bad"]))
    assert isinstance(exc, OperationalError)
    assert "is cancelled; only pending, running, deferred, failed or skipped" in str(exc)
    code, _, exc = invoke("jobs", "show", "999")
    assert isinstance(exc, OperationalError) and "does not exist" in str(exc)


def test_retry_failed_and_usage_errors(env: str) -> None:
    _seed(env)
    code, out, _ = invoke("jobs", "retry", "--failed")
    assert code == 0 and "re-queued 1 failed job(s)" in out
    assert invoke("jobs", "retry")[0] == 2  # neither an ID nor --failed
    assert invoke("jobs", "retry", "1", "--failed")[0] == 2
    assert invoke("jobs", "list", "--state", "bogus")[0] == 2


def test_reprocess_dry_run_and_window(env: str) -> None:
    ids = _seed(env)
    code, out, _ = invoke("reprocess", "--since", "1d", "--dry-run")
    assert code == 0 and "would re-queue 2 job(s)" in out
    code, out, _ = invoke("reprocess", "--since", "1d", "--state", "succeeded")
    assert code == 0 and "re-queued 1 job(s)" in out
    with open_store(env) as store:
        assert store.get_job(ids["ok"]).state == JobState.PENDING  # type: ignore[union-attr]
        with store.engine.begin() as conn:  # the failure happened long ago
            old = datetime.now(UTC) - timedelta(days=40)
            conn.execute(update(jobs).where(jobs.c.id == ids["bad"]).values(finished_at=old))
    tomorrow = (datetime.now() + timedelta(days=1)).date().isoformat()
    code, out, _ = invoke("reprocess", "--since", "2000-01-01", "--until", tomorrow, "--force")
    assert code == 0 and "re-queued 1 job(s)" in out
    assert invoke("reprocess", "--since", "yesterday-ish")[0] == 2
    assert invoke("reprocess", "--since", "1d", "--until", "2d")[0] == 2
    assert invoke("reprocess", "--since", "1d", "--state", "running")[0] == 2


def test_pause_resume(env: str) -> None:
    assert invoke("pause")[0] == 0
    with open_store(env) as store:
        assert store.is_paused()
    _, out, _ = invoke("status", "--json")
    assert json.loads(out)["paused"] is True
    assert invoke("resume")[0] == 0
    with open_store(env) as store:
        assert not store.is_paused()


def test_exit_code_one_through_lmd_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real entry point turns a store problem into exit code 1 with a message."""
    from daemon.cli import main

    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"1 0 0:1 / / rw - ext4 /dev/sda rw\n2 1 0:2 / {tmp_path} rw - cifs //n/s rw\n"
    )
    monkeypatch.setattr("daemon.fsinfo.MOUNTINFO_PATH", mountinfo)
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.setenv("LMD_DATABASE_URL", f"sqlite:///{tmp_path}/db/lmd.sqlite3")
    assert main(["status"]) == 1
    assert main(["jobs", "show", "not-a-number"]) == 2
