"""The store's review operations on SQLite and PostgreSQL: one decision at a time, recorded
with the job's output and an event in one transaction, and the page's order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.store import JobStore, LeaseLost, open_store
from daemon.store.review import ReviewState
from tests.store.store_helpers import make_spec


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lmd.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with open_store(url) as opened:
        yield opened


def _finished(store: JobStore, key: str, *, staged: bool) -> int:
    """A job claimed, noted for review (staged or published) and succeeded, as the worker
    does it."""
    job_id = store.enqueue(make_spec(key=key)).job_id
    job = store.claim("w", 60)
    assert job is not None and job.id == job_id
    store.record_review(
        job_id, staged=staged, flags=[], face_check={"status": "no_faces"},
        flow_confidence=0.8, like_role="target",
        staged_signature={"file": "a.png", "content_hash": "x", "size": 1} if staged else None,
        worker="w",
    )
    path, signature = (None, None) if staged else (f"/out/{key}.HEIC", {"size": 1})
    store.succeed(job_id, "w", path, signature, {})
    return job_id


def test_only_the_worker_holding_the_job_notes_its_review(store: JobStore) -> None:
    job_id = store.enqueue(make_spec(key="lib/a")).job_id
    store.claim("w", 60)
    with pytest.raises(LeaseLost):
        store.record_review(
            job_id, staged=True, flags=[], face_check=None, flow_confidence=None,
            like_role="target", staged_signature=None, worker="someone-else",
        )
    assert store.get_review(job_id) is None


def test_one_decision_at_a_time_recorded_with_the_output(store: JobStore) -> None:
    staged = _finished(store, "lib/a", staged=True)
    published = _finished(store, "lib/b", staged=False)
    assert store.get_review(published).state == ReviewState.ACCEPTED
    assert store.get_review(published).decided_by == "auto"

    claimed = store.claim_review(staged, {ReviewState.AWAITING}, "t1")
    assert claimed is not None and claimed.claim == "t1"
    assert store.claim_review(staged, {ReviewState.AWAITING}, "t2") is None  # taken
    assert store.review_claim_holds(staged, "t1")
    assert not store.review_claim_holds(staged, "t2")
    assert not store.finish_review(staged, "t2", ReviewState.ACCEPTED, decided_by="x")
    assert store.finish_review(
        staged, "t1", ReviewState.ACCEPTED, decided_by="web",
        output=("/out/a.HEIC", {"size": 5, "content_hash": "blake3:aa"}), kind="sidecar-tree",
    )
    review = store.get_review(staged)
    assert review.state == ReviewState.ACCEPTED and review.claim is None
    assert review.job.output_path == "/out/a.HEIC"
    assert store.find_outputs(["blake3:aa"])  # in lmd's index of its own outputs
    assert store.events(staged)[-1].reason == "review: accepted by web"
    # a rejected review cannot be decided again
    assert store.claim_review(published, {ReviewState.ACCEPTED}, "t3") is not None
    assert store.finish_review(
        published, "t3", ReviewState.REJECTED, decided_by="cli", output=(None, None)
    )
    assert store.claim_review(published, {ReviewState.AWAITING, ReviewState.ACCEPTED}, "t4") \
        is None
    assert store.review_counts() == {"awaiting": 0, "accepted": 1, "rejected": 1}


def test_a_job_running_again_leaves_the_page_until_it_finishes(store: JobStore) -> None:
    from datetime import UTC, datetime, timedelta

    first = _finished(store, "lib/a", staged=True)
    second = _finished(store, "lib/b", staged=True)
    third = _finished(store, "lib/c", staged=True)
    assert [r.job_id for r in store.list_reviews("all")] == [third, second, first]
    assert store.review_neighbours(second) == (third, first)
    assert store.review_neighbours(third, "awaiting") == (None, second)
    assert store.reprocess(datetime.now(UTC) - timedelta(hours=1), states=["succeeded"]) == 3
    assert store.list_reviews("all") == [] and store.get_review(first) is None
