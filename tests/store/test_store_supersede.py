"""Newer inputs supersede a job: what happens to the old job wherever it is in its life."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from daemon.store import JobState, JobStore
from daemon.store.models import jobs
from tests.store.store_helpers import make_spec


def _expire(store: JobStore, job_id: int, worker: str) -> None:
    with store.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_expires_at=past))
    assert store.requeue_expired() == 1


HAND_BACKS: dict[str, Callable[[JobStore, int, str], object]] = {
    "release": lambda s, j, w: s.release(j, w, "SIGTERM"),
    "defer": lambda s, j, w: s.defer(j, w, "no GPU", 0),
    "retryable failure": lambda s, j, w: s.fail(j, w, "boom", backoff_base=0),
    "lease expiry": _expire,
}


@pytest.mark.parametrize("hand_back", HAND_BACKS.values(), ids=HAND_BACKS.keys())
def test_superseded_running_job_is_not_queued_again(
    store: JobStore, hand_back: Callable[[JobStore, int, str], object]
) -> None:
    """A job whose inputs changed while it ran must not return to the queue: it would restore
    content that no longer exists, ahead of the newer job that already waits."""
    old = store.enqueue(make_spec(content="v1")).job_id
    assert store.claim("w", 60) is not None
    new = store.enqueue(make_spec(content="v2")).job_id
    hand_back(store, old, "w")
    job = store.get_job(old)
    assert job is not None and job.state == JobState.CANCELLED
    assert job.superseded_by == new and job.finished_at is not None
    assert store.events(old)[-1].reason.startswith(f"superseded by job {new}")  # type: ignore[union-attr]
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == new
    assert store.claim("w", 60) is None


def _run(store: JobStore, job_id: int) -> None:
    job = store.claim("w", 60)
    assert job is not None and job.id == job_id
    store.succeed(job_id, "w", f"/out/{job_id}", {"size": job_id}, {})


def test_inputs_back_to_a_succeeded_job_cancel_the_newer_waiting_job(store: JobStore) -> None:
    """v1 done, v2 queued, the file goes back to v1 before v2 ran: v1's output is still the
    right one, so v2 (whose inputs are gone) is cancelled and v1 is left as it is."""
    old = store.enqueue(make_spec(content="v1")).job_id
    _run(store, old)
    new = store.enqueue(make_spec(content="v2")).job_id
    back = store.enqueue(make_spec(content="v1"))
    assert back.job_id == old and not back.created and back.superseded == [new]
    old_job, new_job = store.get_job(old), store.get_job(new)
    assert old_job is not None and new_job is not None
    assert old_job.state == JobState.SUCCEEDED and old_job.superseded_by is None
    assert new_job.state == JobState.CANCELLED and new_job.superseded_by == old
    assert store.claim("w", 60) is None
    # and the old job counts as current work again for reprocess
    assert store.reprocess(datetime.now(UTC) - timedelta(days=1), dry_run=True) == 1


def test_inputs_back_to_a_succeeded_job_whose_output_was_replaced(store: JobStore) -> None:
    """v1 done, then v2 done (its output replaced v1's), then the file goes back to v1: the
    output on disk is v2's, so v1 runs again."""
    old = store.enqueue(make_spec(content="v1")).job_id
    _run(store, old)
    new = store.enqueue(make_spec(content="v2")).job_id
    _run(store, new)
    back = store.enqueue(make_spec(content="v1"))
    assert back.job_id == old and back.superseded == []
    old_job, new_job = store.get_job(old), store.get_job(new)
    assert old_job is not None and new_job is not None
    assert old_job.state == JobState.PENDING and old_job.superseded_by is None
    assert old_job.attempts == 0 and old_job.finished_at is None
    assert new_job.state == JobState.SUCCEEDED and new_job.superseded_by == old
    assert store.events(old)[-1].reason == (
        f"inputs match this job again; job {new} replaced its output"
    )
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == old


def test_inputs_back_to_a_running_job_cancel_the_newer_waiting_job(store: JobStore) -> None:
    old = store.enqueue(make_spec(content="v1")).job_id
    assert store.claim("w", 60) is not None
    new = store.enqueue(make_spec(content="v2")).job_id
    back = store.enqueue(make_spec(content="v1"))
    assert back.superseded == [new]
    job = store.get_job(old)
    assert job is not None and job.state == JobState.RUNNING and job.superseded_by is None
    assert store.release(old, "w", "SIGTERM")  # current again: back in the queue, not cancelled
    claimed = store.claim("w", 60)
    assert claimed is not None and claimed.id == old


def test_retry_leaves_superseded_jobs_alone(store: JobStore) -> None:
    """Retrying a job superseded by newer inputs would queue stale content beside the newer
    job; `retry` refuses it and `retry_failed` passes over it."""
    cancelled = store.enqueue(make_spec(key="a", content="a1")).job_id
    store.enqueue(make_spec(key="a", content="a2"))
    failed = store.enqueue(make_spec(key="b", content="b1")).job_id
    store.claim("w", 60)  # a2
    running = store.claim("w", 60)
    assert running is not None and running.id == failed
    store.enqueue(make_spec(key="b", content="b2"))
    assert store.fail(failed, "w", "corrupt", retryable=False) == JobState.FAILED
    assert not store.retry(cancelled)
    assert store.retry_failed() == 0
    assert store.get_job(failed).state == JobState.FAILED  # type: ignore[union-attr]
    assert store.get_job(cancelled).state == JobState.CANCELLED  # type: ignore[union-attr]


def test_a_file_moved_over_another_supersedes_that_assets_jobs(store: JobStore) -> None:
    """b/IMG_1 had its own waiting job; a/IMG_1 (other content) is moved over it. The moved
    job now speaks for b/IMG_1, and b's old job, whose content is gone, must not run."""
    there = store.enqueue(make_spec("b/IMG_1", "old content")).job_id
    moving = store.enqueue(make_spec("a/IMG_1", "new content")).job_id
    moved = store.enqueue(make_spec("b/IMG_1", "new content"))
    assert moved.job_id == moving and moved.moved and moved.superseded == [there]
    old = store.get_job(there)
    assert old is not None and old.state == JobState.CANCELLED and old.superseded_by == moving
    assert [j.id for j in store.jobs_for_asset("b/IMG_1") if j.state == JobState.PENDING] == [
        moving
    ]
