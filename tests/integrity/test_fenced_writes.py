"""Fenced writes with two workers on one SQLite file (issue 10 finding 2).

The first worker stalls past its lease (its expiry is moved into the past: no sleeping), the
second claims the job and works it; whatever the first does when it wakes must leave the
library holding the second's output, matching the job row, with the original still in its
backup. Both workers carry the same configured id, as a restarted daemon would.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from daemon.library.media import load_still
from daemon.output import iter_records, revert
from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import JobState, JobStore, open_store
from tests.integrity.helpers import (
    Held,
    HeldAfterWriting,
    Tinted,
    expire,
    wait_for,
    worker,
)
from tests.integrity.invariants import People, check, revert_all_gives_back

#: W1 writes its output this much brighter (on a 0..1 scale) than W2, so a file tells whose
#: output it is: 0.25 is 64 levels in 8 bits, far beyond HEIC's coding error at quality 90
#: (a few levels), so comparing means against 0.125 (half the gap) cannot mistake one for the
#: other.
BRIGHTER = 0.25


def _mean(path: Path) -> float:
    return float(np.asarray(load_still(path), dtype=np.float64).mean())


def _start(settings: Settings, library: Path) -> tuple[People, JobStore, JobStore]:
    people = People(library)
    people.scan_in()
    first, second = open_store(settings.database_url), open_store(settings.database_url)
    assert run_scan(settings, library, store=first).enqueued == 3
    return people, first, second


def _finish(settings: Settings, people: People, job_id: int, stores: tuple[JobStore, ...]):
    """The job is succeeded once, by the second worker, its file is its recorded output (not
    the first worker's brighter one), every invariant holds, and revert gives the original."""
    store = stores[0]
    job = store.get_job(job_id)
    target = Path(job.payload["target"])
    assert job.state == JobState.SUCCEEDED
    assert [e.to_state for e in store.events(job_id)].count(JobState.SUCCEEDED) == 1
    assert job.provenance["params"] == {} and job.lease_generation == 2
    original = Path(next(iter_records(settings.output.backup_dir, target)).backup)
    assert abs(_mean(target) - _mean(original)) < BRIGHTER / 2  # the second worker's
    assert len(store.outputs_of_job(job_id)) == 1
    assert check(store, settings.output.backup_dir, people, state_dir=settings.state_dir) == []
    for record in iter_records(settings.output.backup_dir):
        revert(record)
    assert revert_all_gives_back(people, settings.output.backup_dir) == []
    for each in stores:
        each.close()


def test_the_fence_refuses_a_worker_that_woke_past_its_lease(
    settings: Settings, library: Path
) -> None:
    people, first, second = _start(settings, library)
    held = Held(BRIGHTER)
    stalled = worker(settings, first, restorer=held)
    thread = threading.Thread(target=stalled.run_once, kwargs={"ignore_windows": True})
    thread.start()
    wait_for(held.started.is_set, "the first worker to be restoring")
    [job] = first.list_jobs(state=JobState.RUNNING)
    expire(first, job.id)
    assert worker(settings, second, restorer=Tinted()).run_once(ignore_windows=True)
    assert second.get_job(job.id).state == JobState.SUCCEEDED
    held.go.set()  # the first wakes up and tries to write
    thread.join(60)
    assert not thread.is_alive()
    _finish(settings, people, job.id, (first, second))


def test_a_rename_done_before_the_lease_was_lost_is_left_to_the_successor(
    settings: Settings, library: Path
) -> None:
    """The first worker renamed its output into place, then stalled before recording it; the
    second redoes the job from the backed-up original (not from the first's output) and
    records its own. The first's undo finds the second's output there and leaves it."""
    people, first, second = _start(settings, library)
    files = HeldAfterWriting(first)
    stalled = worker(settings, first, restorer=Tinted(BRIGHTER), files=files)
    thread = threading.Thread(target=stalled.run_once, kwargs={"ignore_windows": True})
    thread.start()
    wait_for(files.written.is_set, "the first worker's rename")
    [job] = first.list_jobs(state=JobState.RUNNING)
    expire(first, job.id)
    successor = Tinted()
    assert worker(settings, second, restorer=successor).run_once(ignore_windows=True)
    [request] = successor.requests
    backup = next(iter_records(settings.output.backup_dir, Path(job.payload["target"]))).backup
    # the original's pixels (core hands restorers float32 in [0, 1]: k/255 exactly)
    restored_from = np.rint(np.asarray(request.target) * 255).astype(np.uint8)
    assert np.array_equal(restored_from, load_still(backup, dtype=np.uint8))
    files.go.set()
    thread.join(60)
    assert not thread.is_alive()
    _finish(settings, people, job.id, (first, second))


def test_a_rename_whose_result_cannot_be_recorded_is_undone(
    settings: Settings, library: Path
) -> None:
    """The first worker renamed its output into place and lost its lease while the second is
    still restoring: the first puts the original back (so the library matches the job row,
    which records nothing of it), then the second writes and records its own output."""
    people, first, second = _start(settings, library)
    files = HeldAfterWriting(first)
    stalled = worker(settings, first, restorer=Tinted(BRIGHTER), files=files)
    thread = threading.Thread(target=stalled.run_once, kwargs={"ignore_windows": True})
    thread.start()
    wait_for(files.written.is_set, "the first worker's rename")
    [job] = first.list_jobs(state=JobState.RUNNING)
    target = Path(job.payload["target"])
    expire(first, job.id)
    held = Held()
    successor = threading.Thread(
        target=worker(settings, second, restorer=held).run_once, kwargs={"ignore_windows": True}
    )
    successor.start()
    wait_for(held.started.is_set, "the second worker to be restoring")
    files.go.set()
    thread.join(60)
    assert not thread.is_alive()
    assert people.files[str(target)] == __import__("core").hashing.digest_file(target)
    held.go.set()
    successor.join(60)
    assert not successor.is_alive()
    _finish(settings, people, job.id, (first, second))
