"""Several real processes on one queue: no job is claimed twice, a crashed worker's lease
expires, and a racing enqueue of one identity leaves one job."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from daemon.store import JobState, JobStore, migrate, open_store
from daemon.store.models import jobs
from tests.store.store_helpers import (
    claim_all,
    claim_and_die,
    enqueue_same,
    make_spec,
    open_at,
)

SPAWN = mp.get_context("spawn")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _fill(url: str, n: int) -> list[int]:
    with open_store(url) as store:
        return [store.enqueue(make_spec(key=f"lib/IMG_{i:04d}")).job_id for i in range(n)]


def _two_workers(url: str) -> tuple[list[int], list[int]]:
    with SPAWN.Manager() as manager, ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(2)  # the children start together, whatever the load
        a = pool.submit(claim_all, url, "worker-a", barrier)
        b = pool.submit(claim_all, url, "worker-b", barrier)
        return a.result(timeout=120), b.result(timeout=120)


def _check_exactly_once(url: str, ids: list[int], a: list[int], b: list[int]) -> None:
    assert sorted(a + b) == sorted(ids)  # every job once, none twice
    assert a and b  # both processes really competed
    with open_store(url, migrate=False) as store:
        assert store.counts()["succeeded"] == len(ids)
        for job_id in (a[0], b[-1]):
            claims = [e for e in store.events(job_id) if e.to_state == JobState.RUNNING]
            assert len(claims) == 1


@pytest.mark.postgres
def test_two_processes_claim_each_postgres_job_exactly_once(postgres_url: str) -> None:
    ids = _fill(postgres_url, 240)
    a, b = _two_workers(postgres_url)
    _check_exactly_once(postgres_url, ids, a, b)


def test_two_processes_never_double_claim_on_sqlite(sqlite_url: str) -> None:
    ids = _fill(sqlite_url, 200)
    a, b = _two_workers(sqlite_url)
    _check_exactly_once(sqlite_url, ids, a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_worker_lease_expires_and_job_is_claimed_again(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    [job_id] = _fill(url, 1)
    child = SPAWN.Process(target=claim_and_die, args=(url, "doomed", 600.0))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with open_store(url, migrate=False) as store:
        held = store.get_job(job_id)
        assert held is not None and held.state == JobState.RUNNING
        assert held.lease_owner == "doomed"
        assert store.claim("survivor", 60) is None  # the lease is still valid
        # the dead worker's lease runs out (moved into the past instead of waiting for it)
        past = datetime.now(UTC) - timedelta(seconds=1)
        with store.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(lease_expires_at=past))
        job = store.claim("survivor", 60)
        assert job is not None and job.id == job_id
        assert job.attempts == 2 and job.last_error == "lease expired (worker doomed)"
        reasons = [e.reason for e in store.events(job_id)]
        assert reasons == ["enqueued", "claimed", "lease expired (worker doomed)", "claimed"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_racing_enqueue_of_one_identity_leaves_one_job(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    migrate(url)
    with SPAWN.Manager() as manager, ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(enqueue_same, url, {"key": "lib/IMG_9"}, barrier, 20)
                   for _ in range(2)]
        created = [f.result(timeout=120) for f in futures]
    assert sum(sum(c) for c in created) == 1  # exactly one call created it
    with open_store(url, migrate=False) as store:
        assert sum(store.counts().values()) == 1


def test_claims_and_heartbeats_interleave_without_busy_errors(sqlite_url: str) -> None:
    """A long heartbeat-holding worker and a claimer share a SQLite file (WAL + IMMEDIATE)."""
    ids = _fill(sqlite_url, 30)
    with open_store(sqlite_url) as one, open_store(sqlite_url) as two:
        assert isinstance(one, JobStore)
        first = one.claim("one", 60)
        assert first is not None
        seen = {first.id}
        while (job := two.claim("two", 60)) is not None:
            assert one.heartbeat(first.id, "one", 60, progress=len(seen) / 30)
            seen.add(job.id)
            two.succeed(job.id, "two", None, None, None)
        assert seen == set(ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_migrating_a_new_database_at_once(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "postgres_url")
    with SPAWN.Manager() as manager, ProcessPoolExecutor(2, mp_context=SPAWN) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(open_at, url, barrier) for _ in range(2)]
        results = [f.result(timeout=120) for f in futures]
    assert results[0] == results[1] == {s.value: 0 for s in JobState}
