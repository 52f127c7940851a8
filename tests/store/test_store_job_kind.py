"""Job kinds (issue 14 item 2): a still and a video job of one asset side by side.

The kind is part of the identity (never the same digest), the supersede rule works within a
kind (a new video job never cancels the still's), counts are per kind, and the migration that
adds the column keeps every earlier row as a still job."""

from __future__ import annotations

import dataclasses
import hashlib

from sqlalchemy import text

from daemon.store import JobStore, job_identity, migrate, open_store
from daemon.store.db import create_store_engine
from daemon.store.identity import IDENTITY_VERSION, canonical_json
from tests.store.store_helpers import OUTPUT, make_spec

SIGNATURES = {
    "reference": {"size": 100, "mtime_ns": 1, "content_hash": "blake3:ref"},
    "video": {"size": 200, "mtime_ns": 1, "content_hash": "blake3:mov"},
}


def _video(spec, content: str = "v1"):
    """The video job of `spec`'s asset (its own identity, as `daemon.video_scan` makes it)."""
    identity = job_identity(SIGNATURES, 0.5, "guided-video", "none", {"c": content},
                            OUTPUT.to_dict(), kind="video")
    return dataclasses.replace(spec, identity=identity, restorer="guided-video",
                               params={"c": content}, kind="video", priority=-1)


def test_kind_is_part_of_the_identity_and_a_still_keeps_its_recipe() -> None:
    args = (SIGNATURES, 0.5, "guided", "none", {"strength": 1.0}, OUTPUT.to_dict())
    still, video = job_identity(*args), job_identity(*args, kind="video")
    assert still != video
    # a still's digest is the recipe from before kinds existed: queued jobs keep their identity
    doc = {"v": IDENTITY_VERSION, "signatures": {r: {"size": s["size"],
           "content_hash": s["content_hash"]} for r, s in SIGNATURES.items()},
           "t1": 0.5, "restorer": "guided", "weights": "none", "params": {"strength": 1.0},
           "output": OUTPUT.to_dict()}
    assert still == hashlib.sha256(canonical_json(doc).encode()).hexdigest()
    assert job_identity(*args, kind="still") == still


def test_a_video_job_never_supersedes_the_still_and_counts_apart(store: JobStore) -> None:
    still = make_spec("lib/IMG_1")
    first = store.enqueue(still)
    video = store.enqueue(_video(still))
    assert video.created and video.superseded == []
    assert store.get_job(first.job_id).state == "pending"
    assert (store.get_job(first.job_id).kind, store.get_job(video.job_id).kind) == (
        "still", "video")
    # a new video identity of the asset supersedes the old video job, and only that one
    newer = store.enqueue(_video(still, "v2"))
    assert newer.superseded == [video.job_id]
    assert store.get_job(first.job_id).state == "pending"
    assert store.get_job(first.job_id).superseded_by is None
    # and a new still identity leaves the video jobs alone
    restill = store.enqueue(make_spec("lib/IMG_1", content="edited"))
    assert restill.superseded == [first.job_id]
    assert store.get_job(newer.job_id).state == "pending"
    assert store.counts("video")["pending"] == 1
    assert store.counts("video")["cancelled"] == 1
    assert store.counts("still") == {**store.counts("video"), "pending": 1, "cancelled": 1}
    assert store.counts()["pending"] == 2


def test_upgrade_from_0006_keeps_rows_as_still_jobs(sqlite_url: str) -> None:
    migrate(sqlite_url, "0006")
    engine = create_store_engine(sqlite_url)
    with engine.begin() as conn:
        for identity, state in (("old-a", "pending"), ("old-b", "succeeded")):
            conn.execute(
                text(
                    "INSERT INTO jobs (identity, asset_key, state, priority, attempts,"
                    " max_attempts, created_at, updated_at, payload, restorer, weights_digest,"
                    " params, force, lease_generation) VALUES (:i, 'lib/IMG_9', :s, 0, 1, 3,"
                    " :t, :t, '{}', 'guided', 'none', '{}', false, 4)"
                ),
                {"i": identity, "s": state, "t": "2026-01-01 00:00:00"},
            )
    engine.dispose()
    with open_store(sqlite_url) as store:
        jobs = {job.identity: job for job in store.list_jobs()}
        assert {i: (j.kind, j.state, j.lease_generation) for i, j in jobs.items()} == {
            "old-a": ("still", "pending", 4), "old-b": ("still", "succeeded", 4)}
        assert store.counts("still")["pending"] == 1 and store.counts("video")["pending"] == 0
