"""JobStore behaviour, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from daemon.store import JobState, JobStore, LeaseLost
from daemon.store.models import jobs
from daemon.store.states import COMMAND_TARGETS, Command, WorkerState, command_allows
from tests.store.store_helpers import OUTPUT, make_spec


def _age(store: JobStore, job_id: int, **values: object) -> None:
    """Move a job's timestamps into the past (instead of sleeping through a lease)."""
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


def test_enqueue_same_identity_is_noop(store: JobStore) -> None:
    first = store.enqueue(make_spec())
    again = store.enqueue(make_spec())
    assert first.created and not again.created
    assert again.job_id == first.job_id and not again.moved
    assert store.counts()["pending"] == 1
    assert [e.reason for e in store.events(first.job_id)] == ["enqueued"]


def test_the_output_is_pinned_on_the_job(store: JobStore) -> None:
    """Mode, location, tree, suffix, backup directory and qualities come back exactly as
    enqueued: they are what the worker writes with, whatever the settings say by then."""
    beside = replace(OUTPUT, mode="replace", location="beside", tree=None, jpeg_quality=80)
    job_id = store.enqueue(make_spec(output=beside)).job_id
    job = store.get_job(job_id)
    assert job is not None and job.output == beside
    assert job.to_dict()["output"]["mode"] == "replace"
    assert job.output.quality_for(Path("x/IMG_E1.jpg")) == 80
    assert job.output.quality_for(Path("x/IMG_E1.HEIC")) == 90


def test_changed_inputs_supersede_waiting_job(store: JobStore) -> None:
    old = store.enqueue(make_spec(content="v1"))
    new = store.enqueue(make_spec(content="v2"))
    assert new.created and new.superseded == [old.job_id]
    old_job = store.get_job(old.job_id)
    assert old_job is not None
    assert old_job.state == JobState.CANCELLED and old_job.superseded_by == new.job_id
    assert store.events(old.job_id)[-1].reason == f"superseded by job {new.job_id}"
    # the inputs go back to v1: the v1 job is current again, v2 is superseded
    back = store.enqueue(make_spec(content="v1"))
    assert back.job_id == old.job_id and back.superseded == [new.job_id]
    assert store.get_job(old.job_id).state == JobState.PENDING  # type: ignore[union-attr]


def test_running_job_is_marked_not_cancelled_when_superseded(store: JobStore) -> None:
    old = store.enqueue(make_spec(content="v1"))
    assert store.claim("w", 60) is not None
    new = store.enqueue(make_spec(content="v2"))
    assert new.superseded == []
    job = store.get_job(old.job_id)
    assert job is not None and job.state == JobState.RUNNING and job.superseded_by == new.job_id


def test_moved_file_updates_paths_instead_of_new_job(store: JobStore) -> None:
    first = store.enqueue(make_spec("a/IMG_1", "same", reference="/photos/a/IMG_1.HEIC"))
    moved = store.enqueue(make_spec("b/IMG_1", "same", reference="/photos/b/IMG_1.HEIC"))
    assert moved.job_id == first.job_id and moved.moved and not moved.created
    job = store.get_job(first.job_id)
    assert job is not None
    assert job.asset_key == "b/IMG_1" and job.payload["reference"] == "/photos/b/IMG_1.HEIC"
    assert store.events(first.job_id)[-1].reason == "moved: a/IMG_1 -> b/IMG_1"
    assert sum(store.counts().values()) == 1


def test_claim_order_priority_then_id_and_not_before(store: JobStore) -> None:
    a = store.enqueue(make_spec(key="a")).job_id
    b = store.enqueue(make_spec(key="b", priority=5)).job_id
    c = store.enqueue(make_spec(key="c")).job_id
    _age(store, a, not_before=datetime.now(UTC) + timedelta(hours=1))
    order = [store.claim("w", 60) for _ in range(3)]
    assert [j.id if j else None for j in order] == [b, c, None]
    _age(store, a, not_before=datetime.now(UTC) - timedelta(seconds=1))
    job = store.claim("w", 60)
    assert job is not None and job.id == a
    assert job.attempts == 1 and job.lease_owner == "w" and job.state == JobState.RUNNING
    assert job.lease_expires_at is not None and job.lease_expires_at.tzinfo is not None


def test_heartbeat_extends_lease_and_records_progress(store: JobStore) -> None:
    store.enqueue(make_spec())
    job = store.claim("w1", 10)
    assert job is not None
    assert store.heartbeat(job.id, "w1", 600, progress=0.25, stage="tiles")
    after = store.get_job(job.id)
    assert after is not None and after.progress == 0.25 and after.stage == "tiles"
    assert after.lease_expires_at > job.lease_expires_at  # type: ignore[operator]
    assert not store.heartbeat(job.id, "intruder", 600)


def test_expired_lease_requeues_then_fails_when_attempts_used(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(max_attempts=2)).job_id
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert store.claim("w1", 60) is not None
    _age(store, job_id, lease_expires_at=past)
    second = store.claim("w2", 60)  # the claim requeues the expired lease first
    assert second is not None and second.id == job_id and second.attempts == 2
    assert second.last_error == "lease expired (worker w1)"
    assert not store.heartbeat(job_id, "w1", 60)  # the old owner lost it
    _age(store, job_id, lease_expires_at=past)
    assert store.requeue_expired() == 1
    failed = store.get_job(job_id)
    assert failed is not None and failed.state == JobState.FAILED
    assert failed.last_error == "lease expired (worker w2)"
    with pytest.raises(LeaseLost):
        store.succeed(job_id, "w2", "/out", {}, {})
    # the other finishing calls report a lost lease without raising (and change nothing)
    assert store.fail(job_id, "w2", "late error") is None
    assert store.defer(job_id, "w2", "no GPU", 60) is None
    assert store.release(job_id, "w2", "SIGTERM") is False
    assert store.get_job(job_id).last_error == "lease expired (worker w2)"  # type: ignore[union-attr]


def test_fail_retries_with_backoff_then_fails(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(max_attempts=2)).job_id
    store.claim("w", 60)
    assert store.fail(job_id, "w", "boom 1") == JobState.PENDING
    job = store.get_job(job_id)
    assert job is not None and job.not_before is not None
    assert job.not_before > datetime.now(UTC) + timedelta(seconds=50)  # default backoff 60 s
    assert store.claim("w", 60) is None  # not before the backoff
    _age(store, job_id, not_before=None)
    store.claim("w", 60)
    assert store.fail(job_id, "w", "boom 2", backoff_base=0) == JobState.FAILED
    failures = store.recent_failures()
    assert failures[0]["job_id"] == job_id and failures[0]["error"] == "boom 2"
    assert failures[0]["path"] == "/photos/lib/IMG_0001.HEIC"


def test_non_retryable_failure_fails_at_once(store: JobStore) -> None:
    job_id = store.enqueue(make_spec()).job_id
    store.claim("w", 60)
    assert store.fail(job_id, "w", "corrupt file", retryable=False) == JobState.FAILED


def test_defer_and_release_do_not_burn_attempts(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(max_attempts=1)).job_id
    store.claim("w", 60)
    assert store.defer(job_id, "w", "no GPU", base_seconds=3600)
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.DEFERRED and job.attempts == 0
    assert store.claim("w", 60) is None
    _age(store, job_id, not_before=datetime.now(UTC) - timedelta(seconds=1))
    again = store.claim("w", 60)
    assert again is not None and again.id == job_id and again.attempts == 1
    assert store.release(job_id, "w", "SIGTERM")
    released = store.get_job(job_id)
    assert released is not None and released.state == JobState.PENDING
    assert released.attempts == 0 and released.lease_owner is None


def _delay(job: object) -> float:
    return (job.not_before - job.updated_at).total_seconds()  # type: ignore[attr-defined]


def test_repeated_deferrals_back_off_exponentially(store: JobStore) -> None:
    """A deferral hands its attempt back, so the backoff grows with the job's earlier
    deferrals: a device that stays busy is asked after 1x, 2x, 4x ... at most 32x the base."""
    job_id = store.enqueue(make_spec(max_attempts=1)).job_id
    delays = []
    for _ in range(7):
        _age(store, job_id, not_before=None)
        assert store.claim("w", 60) is not None
        assert store.defer(job_id, "w", "no GPU", base_seconds=10) is not None
        job = store.get_job(job_id)
        assert job is not None and job.state == JobState.DEFERRED and job.attempts == 0
        delays.append(_delay(job))
    assert delays == [10, 20, 40, 80, 160, 320, 320]


def test_failed_attempts_back_off_exponentially(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(max_attempts=4)).job_id
    delays = []
    for _ in range(3):
        _age(store, job_id, not_before=None)
        assert store.claim("w", 60) is not None
        assert store.fail(job_id, "w", "boom", backoff_base=5) == JobState.PENDING
        delays.append(_delay(store.get_job(job_id)))
    assert delays == [5, 10, 20]


def test_succeed_records_output(store: JobStore) -> None:
    job_id = store.enqueue(make_spec()).job_id
    store.claim("w", 60)
    with pytest.raises(LeaseLost):
        store.succeed(job_id, "other", "/out/x.HEIC", {"size": 3}, {"restorer": "guided"})
    store.succeed(job_id, "w", "/out/x.HEIC", {"size": 3}, {"restorer": "guided"})
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.SUCCEEDED
    assert job.output_signature == {"size": 3} and job.provenance == {"restorer": "guided"}
    assert job.finished_at is not None and job.lease_owner is None
    states = [(e.from_state, e.to_state) for e in store.events(job_id)]
    assert states == [
        (None, JobState.PENDING),
        (JobState.PENDING, JobState.RUNNING),
        (JobState.RUNNING, JobState.SUCCEEDED),
    ]


def test_cancel_retry_skip(store: JobStore) -> None:
    a = store.enqueue(make_spec(key="a")).job_id
    b = store.enqueue(make_spec(key="b")).job_id
    assert store.cancel(a)
    assert not store.cancel(a)  # already cancelled
    assert store.retry(a)
    assert store.get_job(a).state == JobState.PENDING  # type: ignore[union-attr]
    assert store.skip(b, "not restorable")
    assert not store.retry(a)  # pending: nothing to retry
    running = store.claim("w", 60)
    assert running is not None and running.id == a
    assert store.cancel(a)  # a running job's worker sees its heartbeat refused
    assert not store.heartbeat(a, "w", 60)


def test_retry_failed(store: JobStore) -> None:
    ids = [store.enqueue(make_spec(key=f"k{i}", max_attempts=1)).job_id for i in range(3)]
    for _ in ids:
        job = store.claim("w", 60)
        assert job is not None
        store.fail(job.id, "w", "bad")
    assert store.counts()["failed"] == 3
    assert store.retry_failed() == 3
    assert all(j.attempts == 0 for j in store.list_jobs(JobState.PENDING))


def test_reprocess_window_dry_run_and_force(store: JobStore) -> None:
    ids = [store.enqueue(make_spec(key=f"k{i}")).job_id for i in range(3)]
    for _ in ids:
        job = store.claim("w", 60)
        assert job is not None
        store.succeed(job.id, "w", None, None, None)
    now = datetime.now(UTC)
    _age(store, ids[0], finished_at=now - timedelta(days=10))
    since = now - timedelta(days=1)
    assert store.reprocess(since, dry_run=True) == 2
    assert store.counts()["succeeded"] == 3
    assert store.reprocess(now - timedelta(days=30), until=since) == 1
    assert store.get_job(ids[0]).state == JobState.PENDING  # type: ignore[union-attr]
    assert store.reprocess(since, force=True) == 2
    assert store.get_job(ids[1]).force  # type: ignore[union-attr]
    assert store.reprocess(since) == 0  # already pending: nothing more to re-queue
    assert store.reprocess(since, states=[JobState.FAILED]) == 0
    with pytest.raises(ValueError):
        store.reprocess(since, states=[JobState.RUNNING])


def test_counts_include_every_state(store: JobStore) -> None:
    assert store.counts() == {s.value: 0 for s in JobState}


def test_workers_scans_assets_and_control(store: JobStore) -> None:
    idle, running = WorkerState.IDLE, WorkerState.RUNNING
    store.upsert_worker("host:1", state=idle, hostname="host", pid=1, window="01:00-07:00")
    store.upsert_worker("host:1", state=running, job_id=None, progress=0.5, stage="tiles")
    [worker] = store.get_workers()
    assert worker["state"] == "running" and worker["hostname"] == "host"
    assert worker["stage"] == "tiles"

    scan = store.start_scan("/photos", "schedule")
    store.finish_scan(scan, files_seen=10, assets_found=4, enqueued=2, unreadable=1)
    last = store.last_scan()
    assert last is not None and last["id"] == scan and last["enqueued"] == 2
    assert last["finished_at"] is not None

    store.remember_asset("a", "fp1", {"key": "a"}, None, True, scan_id=scan)
    store.remember_asset("b", "fp1", {"key": "b"}, "video unreadable", False)
    assert store.lookup_asset("a", "fp1") == {"key": "a"}
    assert store.lookup_asset("a", "fp2") is None
    problems = store.library_problems()
    assert [(p["key"], p["reason"]) for p in problems] == [("b", "video unreadable")]

    assert not store.is_paused()
    store.set_paused(True)
    assert store.is_paused() and store.get_control("paused") == "1"
    store.set_paused(False)
    assert not store.is_paused()



@pytest.mark.parametrize("state", list(JobState))
def test_retry_and_cancel_act_on_the_states_the_command_table_allows(
    store: JobStore, state: JobState
) -> None:
    """The store answers from COMMAND_STATES (which the CLI's messages quote): a job in every
    state is offered to retry and to cancel, and each acts exactly where the table says."""
    for command, act in ((Command.RETRY, store.retry), (Command.CANCEL, store.cancel)):
        job_id = store.enqueue(make_spec(key=f"{command}/{state}")).job_id
        _age(store, job_id, state=state.value)
        assert act(job_id) is command_allows(command, state), (command, state)
        after = store.get_job(job_id).state  # type: ignore[union-attr]
        assert after == (COMMAND_TARGETS[command] if command_allows(command, state) else state)
