"""Fenced leases: every claim bumps the job's lease generation, and only the holder of the
current generation may renew, pass the fence before a rename, or record a result (issue 10
finding 2). The same worker id is used for both holders on purpose: a configured `worker.id`
survives a restart, so the owner alone cannot tell a stalled worker from its successor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from daemon.store import JobState, JobStore, LeaseLost
from daemon.store.jobs import utcnow
from daemon.store.models import jobs
from tests.store.store_helpers import make_spec

SIG = {"size": 10, "mtime_ns": 1, "content_hash": "blake3:" + "ab" * 32}


def expire(store: JobStore, job_id: int) -> None:
    """Move the lease's expiry into the past, as if its worker had stalled past it."""
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def stolen(store: JobStore, worker: str = "box") -> tuple[int, int, int]:
    """A job claimed by `worker`, expired, and claimed again by a worker of the same name:
    (job id, the stale generation, the current one)."""
    job_id = store.enqueue(make_spec()).job_id
    first = store.claim(worker, 60)
    assert first is not None and first.id == job_id
    expire(store, job_id)
    second = store.claim(worker, 60)
    assert second is not None and second.id == job_id
    return job_id, first.lease_generation, second.lease_generation


def test_every_claim_bumps_the_generation(store: JobStore) -> None:
    job_id, stale, current = stolen(store)
    assert (stale, current) == (1, 2)
    assert store.get_job(job_id).lease_generation == 2


def test_the_fence_holds_only_for_the_current_generation_and_an_unexpired_lease(
    store: JobStore,
) -> None:
    job_id, stale, current = stolen(store)
    assert not store.hold_lease(job_id, "box", stale, 60)
    assert store.hold_lease(job_id, "box", current, 60)
    assert not store.hold_lease(job_id, "other", current, 60)
    expire(store, job_id)
    # run out but not yet claimed by anyone: not held either
    assert not store.hold_lease(job_id, "box", current, 60)


def test_a_stale_generation_records_nothing(store: JobStore) -> None:
    job_id, stale, current = stolen(store)
    assert not store.heartbeat(job_id, "box", 60, generation=stale)
    with pytest.raises(LeaseLost):
        store.succeed(job_id, "box", "/out/a", SIG, {}, generation=stale, kind="replace")
    assert store.fail(job_id, "box", "boom", generation=stale) is None
    assert store.defer(job_id, "box", "no gpu", 5, generation=stale) is None
    assert not store.release(job_id, "box", "stop", generation=stale)
    assert not store.skip(job_id, "inputs changed", worker_id="box", generation=stale)
    job = store.get_job(job_id)
    assert (job.state, job.lease_generation, job.output_path) == (JobState.RUNNING, current, None)
    assert store.find_outputs([SIG["content_hash"]]) == {}  # the index got nothing either
    assert store.heartbeat(job_id, "box", 60, generation=current)


def test_success_and_its_output_are_recorded_in_one_transaction(store: JobStore) -> None:
    job_id = store.enqueue(make_spec()).job_id
    job = store.claim("w", 60)
    assert job is not None
    store.succeed(
        job_id, "w", "/photos/lib/IMG_E1.HEIC", SIG, {"restorer": "guided"},
        generation=job.lease_generation, kind="replace", record="/state/b/IMG_E1.x.lmd.json",
    )
    [found] = store.find_outputs([SIG["content_hash"], "blake3:none"]).values()
    assert (found.job_id, found.kind, found.path, found.size) == (
        job_id, "replace", "/photos/lib/IMG_E1.HEIC", 10)
    assert found.record == "/state/b/IMG_E1.x.lmd.json" and not found.record_stale
    assert store.outputs_of_job(job_id) == [found]
    assert store.outputs_with_record(found.record) == [found]


def test_a_restored_still_that_moved_takes_its_job_and_record_along(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(key="2026/IMG_1")).job_id
    job = store.claim("w", 60)
    old, new = "/photos/2026/IMG_E1.HEIC", "/photos/2026-trip/IMG_E1.HEIC"
    store.succeed(job_id, "w", old, SIG, {}, generation=job.lease_generation, kind="replace",
                  record="/state/b/2026/IMG_E1.lmd.json")
    [row] = store.outputs_of_job(job_id)
    payload = {**job.payload, "key": "2026-trip/IMG_1", "target": new}
    assert store.output_moved(row.id, new, "2026-trip/IMG_1", payload)
    moved = store.get_job(job_id)
    assert (moved.asset_key, moved.output_path, moved.state) == (
        "2026-trip/IMG_1", new, JobState.SUCCEEDED)
    assert moved.payload["target"] == new
    assert "restored, moved" in store.events(job_id)[-1].reason
    [follow] = store.records_to_follow()
    assert (follow.id, follow.path, follow.record_target) == (row.id, new, old)
    store.record_followed(row.id, new)
    assert store.records_to_follow() == []
    assert store.outputs_at(new)[0].id == row.id


def test_a_reverted_output_stays_known_but_its_job_no_longer_claims_it(store: JobStore) -> None:
    job_id = store.enqueue(make_spec()).job_id
    job = store.claim("w", 60)
    store.succeed(job_id, "w", "/photos/x.HEIC", SIG, {}, generation=job.lease_generation,
                  kind="replace", record="/state/r.lmd.json")
    [row] = store.outputs_of_job(job_id)
    store.output_reverted(row.id)
    done = store.get_job(job_id)
    assert done.state == JobState.SUCCEEDED and done.output_path is None
    assert done.output_signature is None
    assert store.find_outputs([SIG["content_hash"]])[SIG["content_hash"]].reverted_at is not None
    assert store.outputs_at("/photos/x.HEIC") == []


def test_upgrade_indexes_the_outputs_of_earlier_jobs(store_url: str) -> None:
    """0006 adds the lease generation (0 for every existing job) and gives every job that
    succeeded before it a row in the output index, from its output signature."""
    from sqlalchemy import text

    from daemon.store import migrate, open_store
    from daemon.store.db import create_store_engine

    migrate(store_url, "0005")
    engine = create_store_engine(store_url)
    with engine.begin() as conn:
        for identity, state, signature in (
            ("done", "succeeded", '{"size": 7, "mtime_ns": 1, "content_hash": "blake3:cd"}'),
            ("waiting", "pending", None),
        ):
            conn.execute(
                text(
                    "INSERT INTO jobs (identity, asset_key, state, priority, attempts,"
                    " max_attempts, created_at, updated_at, finished_at, payload, restorer,"
                    " weights_digest, params, force, output_path, output_signature, output_mode,"
                    " output_location, output_root, output_suffix, jpeg_quality, heic_quality)"
                    " VALUES (:i, :k, :s, 0, 1, 3, :t, :t, :t, '{}', 'guided', 'none', '{}',"
                    " false, :p, :sig, 'replace', 'tree', '/photos', '_lmd', 95, 90)"
                ),
                {"i": identity, "k": identity, "s": state, "t": "2026-01-01 00:00:00",
                 "p": "/photos/IMG_E1.HEIC" if signature else None, "sig": signature},
            )
    engine.dispose()
    with open_store(store_url) as store:
        [row] = store.find_outputs(["blake3:cd"]).values()
        done = next(j for j in store.list_jobs() if j.identity == "done")
        assert (row.job_id, row.kind, row.path, row.size) == (
            done.id, "replace", "/photos/IMG_E1.HEIC", 7)
        assert {j.lease_generation for j in store.list_jobs()} == {0}
        job = store.claim("w", 60)
        assert job is not None and job.lease_generation == 1


def test_a_moved_still_takes_every_output_at_its_path_and_jobs_find_it_by_content(
    store: JobStore,
) -> None:
    """Two outputs were written over one still (two jobs); the still moves: both index rows,
    both jobs' output paths move (so the records of both follow), and the still is found
    where the jobs now see it by its original content."""
    import dataclasses

    old, new = "/photos/2026/IMG_E1.HEIC", "/photos/2026-trip/IMG_E1.HEIC"
    ids = []
    for n in (1, 2):
        spec = make_spec(key="2026/IMG_1", content=f"v{n}")
        payload = {**spec.payload, "target": old,
                   "signatures": {"target": {"size": 1, "mtime_ns": 1,
                                             "content_hash": "blake3:orig"}}}
        job_id = store.enqueue(dataclasses.replace(spec, payload=payload)).job_id
        job = store.claim("w", 60)
        signature = {**SIG, "content_hash": f"blake3:out{n}"}
        store.succeed(job_id, "w", old, signature, {}, generation=job.lease_generation,
                      kind="replace", record=f"/state/b/r{n}.lmd.json")
        ids.append(job_id)
    [newest] = store.outputs_of_job(ids[1])
    moved = {**store.get_job(ids[1]).payload, "target": new}
    assert store.output_moved(newest.id, new, "2026-trip/IMG_1", moved)
    assert {store.get_job(i).output_path for i in ids} == {new}
    assert {row.path for i in ids for row in store.outputs_of_job(i)} == {new}
    assert {row.record for row in store.records_to_follow()} == {
        "/state/b/r1.lmd.json", "/state/b/r2.lmd.json"}
    assert store.targets_holding("blake3:orig")[0] == new
