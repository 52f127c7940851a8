"""Requeueing expired leases while another box claims the same job (PostgreSQL, READ
COMMITTED): the expiry must not take away the other box's fresh lease."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text, update

from daemon.store import JobState, open_store
from daemon.store.models import jobs
from tests.store.store_helpers import make_spec


def _wait_for_lock_wait(store_url: str, deadline: float) -> None:
    with open_store(store_url, migrate=False) as watcher:
        while time.monotonic() < deadline:
            with watcher.engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND datname = current_database()"
                    )
                ).scalar()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("the expiry never waited for the rival's row lock")


@pytest.mark.postgres
def test_expiry_does_not_steal_a_lease_claimed_meanwhile(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        job_id = store.enqueue(make_spec(max_attempts=3)).job_id
        assert store.claim("dead", 60) is not None
        past = datetime.now(UTC) - timedelta(seconds=1)
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_expires_at=past))

        # Another box requeued the expired job and claimed it; its transaction is not yet
        # committed when this box looks for expired leases (and still sees the old row).
        rival = store.engine.connect()
        tx = rival.begin()
        rival.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                lease_owner="rival", attempts=2,
                lease_expires_at=datetime.now(UTC) + timedelta(seconds=60),
            )
        )
        handled: list[int] = []
        expiry = threading.Thread(target=lambda: handled.append(store.requeue_expired()))
        expiry.start()
        try:
            _wait_for_lock_wait(postgres_url, time.monotonic() + 20)
        finally:
            tx.commit()
            rival.close()
            expiry.join(30)
        assert handled == [0]
        job = store.get_job(job_id)
        assert job is not None and job.state == JobState.RUNNING
        assert job.lease_owner == "rival" and job.attempts == 2
        assert store.heartbeat(job_id, "rival", 60)
