"""Hooks kept in the job database's outbox (`StoredHookRunner`): a hook owed for a finished
job runs after a restart, one killed by lmd's shutdown runs again at the next start, and one
that failed is kept as failed (not run twice) for `lmd status`. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from daemon.publish.hook_outbox import StoredHookRunner
from daemon.publish.publishers import Publishers
from daemon.publish.settings import HooksSettings
from daemon.store import open_store
from daemon.store.outbox import OutboxState
from tests.publish.test_hooks import outcome, recorder, wait_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lmd.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def test_a_hook_owed_before_a_restart_runs_after_it(url: str, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    settings = HooksSettings(on_success=recorder(seen))
    with open_store(url) as first:  # the job finished; lmd stopped before the hook ran
        first.add_outbox("hooks", "hook.success", outcome(job_id=41).to_document(), job_id=41)
    with open_store(url) as second:
        off = SimpleNamespace(url=None)
        sections = SimpleNamespace(hooks=settings, immich=off, photoprism=off)
        runner = Publishers.from_settings(sections, None, store=second).hooks  # type: ignore[arg-type]
        assert isinstance(runner, StoredHookRunner)
        runner.start()
        assert runner.wait_idle(30)
        runner.close()
        got = json.loads(seen.read_text())
        assert got["doc"]["job_id"] == 41 and got["env"]["LMD_JOB_ID"] == "41"
        assert got["doc"]["original"] == "/library/2026/IMG_0001 ü.HEIC"
        (done,) = second.list_outbox()
        assert done.state == OutboxState.DELIVERED and done.publisher == "hooks"


def test_a_failed_hook_is_kept_as_failed_and_not_run_again(url: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = f"echo run >> {shlex.quote(str(runs))}; echo 'no such album' >&2; exit 3"
    with open_store(url) as store:
        runner = StoredHookRunner(HooksSettings(on_failure=command), store)
        runner.submit(outcome(job_id=5, event="failure"))
        runner.submit(outcome(job_id=6, event="success"))  # no on_success: nothing queued
        assert runner.wait_idle(30)
        runner.close()
        (failed,) = store.list_outbox()
        assert failed.state == OutboxState.FAILED and failed.job_id == 5
        assert failed.last_error == "hook exited with status 3: no such album"
        assert store.outbox_counts()["hooks"]["failed"] == 1
    assert runs.read_text() == "run\n"


def test_a_hook_killed_by_shutdown_runs_again_at_the_next_start(
    url: str, tmp_path: Path
) -> None:
    log, fast = tmp_path / "log", tmp_path / "fast"
    q = shlex.quote
    command = (
        f"echo started >> {q(str(log))}; [ -e {q(str(fast))} ] || sleep 60; "
        f"echo done >> {q(str(log))}"
    )
    settings = HooksSettings(on_success=command, timeout_seconds=120)
    with open_store(url) as store:
        first = StoredHookRunner(settings, store)
        first.submit(outcome(job_id=9))
        assert wait_for(lambda: log.exists() and log.read_text() == "started\n")
        first.close()  # lmd stops: the hook is killed before it finished
        (waiting,) = store.list_outbox(OutboxState.PENDING)
        assert waiting.attempts == 1 and "lmd is stopping" in (waiting.last_error or "")
        fast.touch()
        second = StoredHookRunner(settings, store)
        second.start()
        assert second.wait_idle(30)
        second.close()
        assert store.list_outbox()[0].state == OutboxState.DELIVERED
    assert log.read_text() == "started\nstarted\ndone\n"
