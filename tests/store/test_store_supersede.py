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
    "retryable failure": lambda s, j, w: s.fail(j, w, "boom", backoff_seconds=0),
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
