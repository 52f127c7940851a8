"""Nothing stuck (issue 10 finding 4, store side): the stored signatures follow what the scan
saw, and a job skipped because its inputs changed or moved between scan and work is queued
again by the scan that sees them consistent under the same identity."""

from __future__ import annotations

import dataclasses

from daemon.store import JobState, JobStore
from tests.store.store_helpers import make_spec


def _touched(spec, mtime_ns: int = 99):  # type: ignore[no-untyped-def]
    """The same spec after `touch`: same content (identity), a new mtime in its signatures."""
    payload = dict(spec.payload)
    payload["signatures"] = {"reference": {"size": 100, "mtime_ns": mtime_ns,
                                           "content_hash": "blake3:ref"}}
    return dataclasses.replace(spec, payload=payload)


def _moved(spec, folder: str = "/photos/moved"):  # type: ignore[no-untyped-def]
    payload = {**spec.payload, "reference": f"{folder}/IMG_0001.HEIC",
               "video": f"{folder}/IMG_0001.MOV", "target": f"{folder}/IMG_E0001.HEIC"}
    return dataclasses.replace(spec, asset_key="moved/IMG_0001", payload=payload)


def _skipped(store: JobStore, spec) -> int:  # type: ignore[no-untyped-def]
    job_id = store.enqueue(spec).job_id
    job = store.claim("w", 60)
    assert job is not None and job.id == job_id
    assert store.skip(job_id, "inputs changed", worker_id="w", generation=job.lease_generation)
    return job_id


def test_a_touched_input_updates_the_stored_signatures(store: JobStore) -> None:
    spec = _touched(make_spec(), mtime_ns=1)
    job_id = store.enqueue(spec).job_id
    result = store.enqueue(_touched(spec))
    assert (result.job_id, result.created) == (job_id, False)
    job = store.get_job(job_id)
    assert job.payload["signatures"]["reference"]["mtime_ns"] == 99
    assert job.state == JobState.PENDING
    assert store.events(job_id)[-1].reason == "inputs touched: their signatures updated"
    store.enqueue(_touched(spec))
    assert len(store.events(job_id)) == 2  # unchanged since: no new event


def test_a_job_skipped_for_moved_inputs_is_queued_again_where_they_are(store: JobStore) -> None:
    spec = make_spec()
    job_id = _skipped(store, spec)
    result = store.enqueue(_moved(spec))
    assert result.moved and result.job_id == job_id
    job = store.get_job(job_id)
    assert job.state == JobState.PENDING and job.asset_key == "moved/IMG_0001"
    assert job.attempts == 0
    assert store.events(job_id)[-1].reason == "inputs consistent again"
    assert store.claim("w", 60).id == job_id


def test_a_job_skipped_for_touched_inputs_is_queued_again(store: JobStore) -> None:
    spec = _touched(make_spec(), mtime_ns=1)
    job_id = _skipped(store, spec)
    store.enqueue(_touched(spec))
    assert store.get_job(job_id).state == JobState.PENDING


def test_a_skipped_job_whose_inputs_the_scan_sees_unchanged_stays_skipped(
    store: JobStore,
) -> None:
    """Nothing new about its inputs (it was skipped for another reason): no loop of
    queue, skip, queue on every scan."""
    spec = make_spec()
    job_id = _skipped(store, spec)
    store.enqueue(spec)
    assert store.get_job(job_id).state == JobState.SKIPPED


def test_an_output_beside_the_asset_moves_with_it_one_in_the_tree_does_not(
    store: JobStore,
) -> None:
    for output in ("/photos/IMG_E0001_lmd.HEIC", "/state/restored/IMG_E0001.HEIC"):
        spec = make_spec(key=f"k{len(output)}", content=output)
        payload = {**spec.payload, "target": "/photos/IMG_E0001.HEIC"}
        spec = dataclasses.replace(spec, payload=payload)
        job_id = store.enqueue(spec).job_id
        job = store.claim("w", 60)
        store.succeed(job_id, "w", output, {"size": 1, "mtime_ns": 1, "content_hash": "x"}, {},
                      generation=job.lease_generation)
        store.enqueue(_moved(spec))
        moved = store.get_job(job_id)
        expected = ("/photos/moved/IMG_E0001_lmd.HEIC" if "_lmd" in output else output)
        assert moved.output_path == expected
        assert moved.state == JobState.SUCCEEDED  # a move is not new work
