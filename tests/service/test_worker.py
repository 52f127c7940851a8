"""Worker outcomes other than success: deferral, pause, failed writes retried, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core import Diagnostics, OutOfDeviceMemory, RestoreRequest, RestoreResult
from daemon.scanner import run_scan
from daemon.store import open_store
from daemon.worker import Worker
from tests.service.helpers import make_settings


class OutOfMemoryOnce:
    """A real restorer object whose first call runs out of device memory."""

    name = "flaky-gpu"

    def __init__(self) -> None:
        self.calls = 0

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.calls += 1
        if self.calls == 1:
            raise OutOfDeviceMemory("CUDA out of memory (test)")
        h, w = request.reference.shape[:2]
        import cv2

        up = cv2.resize(request.target, (w, h), interpolation=cv2.INTER_CUBIC)
        return RestoreResult(np.clip(up, 0, 1), Diagnostics(tiles=1))


def test_out_of_memory_defers_without_burning_an_attempt(tmp_path: Path, tiny_library: Path):
    settings = make_settings(tmp_path, worker={"defer_seconds": 0.05, "max_attempts": 1})
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        restorer = OutOfMemoryOnce()
        worker = Worker(settings, store, worker_id="w", restorer=restorer)
        assert worker.run_once(ignore_windows=True)
        states = sorted(job.state for job in store.list_jobs())
        assert states == ["deferred", "pending"]
        deferred = next(job for job in store.list_jobs() if job.state == "deferred")
        assert "OutOfDeviceMemory" in (deferred.last_error or "")
        import time

        time.sleep(0.2)
        assert worker.run_until_empty() == 2
        # max_attempts is 1, yet the deferred job still succeeded: a deferral is not a failure
        assert store.counts()["succeeded"] == 2
    finally:
        store.close()


def test_pause_stops_claiming_and_resume_continues(tmp_path: Path, tiny_library: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        store.set_paused(True)
        worker = Worker(settings, store, worker_id="w")
        assert worker.run_once() is False
        assert store.get_workers()[0]["state"] == "paused"
        assert store.counts()["pending"] == 2
        store.set_paused(False)
        assert worker.run_once() is True
    finally:
        store.close()


def test_outside_the_window_nothing_runs(tmp_path: Path, tiny_library: Path) -> None:
    from datetime import datetime, timedelta

    now = datetime.now()
    start = (now + timedelta(hours=2)).strftime("%H:00")
    end = (now + timedelta(hours=3)).strftime("%H:00")
    settings = make_settings(tmp_path, worker={"windows": [f"{start}-{end}"]})
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        worker = Worker(settings, store, worker_id="w")
        assert worker.run_once() is False
        row = store.get_workers()[0]
        assert row["state"] == "outside-window" and row["window"] == f"{start}-{end}"
    finally:
        store.close()


def test_a_failed_write_leaves_nothing_and_is_retried(tmp_path: Path, tiny_library: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output tree should be")
    settings = make_settings(tmp_path, output={"tree": blocker})
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        worker = Worker(settings, store, worker_id="w")
        assert worker.run_once(ignore_windows=True)
        failed = [job for job in store.list_jobs() if job.attempts == 1]
        assert len(failed) == 1
        assert failed[0].state == "pending"  # retryable: back in the queue, with the reason
        assert failed[0].last_error
        assert not any(p.name.startswith(".lmd-tmp") for p in tmp_path.rglob("*"))
    finally:
        store.close()


def test_inputs_changed_or_corrupt_after_the_scan(tmp_path: Path, tiny_library: Path) -> None:
    import os

    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        changed, corrupt = store.list_jobs()[:2]
        # one reference is truncated after the scan (its size changes)...
        reference = Path(changed.payload["reference"])
        reference.write_bytes(reference.read_bytes()[:1000])
        # ...the other is overwritten with garbage of the same size and mtime
        reference = Path(corrupt.payload["reference"])
        stat = reference.stat()
        reference.write_bytes(b"\x00" * stat.st_size)
        os.utime(reference, ns=(stat.st_atime_ns, stat.st_mtime_ns))

        Worker(settings, store, worker_id="w").run_until_empty()
        assert store.get_job(changed.id).state == "skipped"  # the next scan requeues it
        failed = store.get_job(corrupt.id)
        assert failed.state == "failed" and failed.attempts == 1  # retrying cannot help
        assert failed.last_error.startswith("unreadable input:")
        assert store.recent_failures()[0]["error"].startswith("unreadable input:")
    finally:
        store.close()


def test_status_flags_workers_that_stopped_refreshing() -> None:
    from datetime import UTC, datetime, timedelta

    from daemon.status import STALE_WORKER_SECONDS
    from daemon.status import with_staleness as _with_staleness

    now = datetime.now(UTC)
    old = now - timedelta(seconds=STALE_WORKER_SECONDS + 5)
    assert _with_staleness({"state": "idle", "heartbeat_at": now})["stale"] is False
    assert _with_staleness({"state": "running", "heartbeat_at": old.isoformat()})["stale"] is True
    assert _with_staleness({"state": "stopped", "heartbeat_at": old})["stale"] is False


def test_pause_during_a_job_hands_it_back_between_steps(tmp_path: Path) -> None:
    import threading
    import time

    from daemon.demo import build_sample_library

    library = tmp_path / "library"
    build_sample_library(library, count=1, video_size=(480, 360), scale=4)  # a 4-tile job
    settings = make_settings(tmp_path, worker={"heartbeat_seconds": 0.1, "lease_seconds": 30})
    store = open_store(settings.database_url)
    try:
        run_scan(settings, library, store=store)
        worker = Worker(settings, store, worker_id="w")

        def pause_once_running() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(w["state"] == "running" for w in store.get_workers()):
                    store.set_paused(True)
                    return
                time.sleep(0.02)

        pauser = threading.Thread(target=pause_once_running)
        pauser.start()
        assert worker.run_once(ignore_windows=True)
        pauser.join()
        job = store.list_jobs()[0]
        assert job.state == "pending" and job.output_path is None
        assert store.events(job.id)[-1].reason == "cancelled (paused)"
        assert not (settings.output.tree and any(Path(settings.output.tree).rglob("*.HEIC")))
        assert worker.run_once() is False  # paused: nothing is claimed
        store.set_paused(False)
        assert worker.run_once() is True
        assert store.get_job(job.id).state == "succeeded"
    finally:
        store.close()


def test_idle_worker_unloads_the_model(tmp_path: Path, tiny_library: Path) -> None:
    import threading
    import time

    settings = make_settings(
        tmp_path, restorer={"idle_unload_seconds": 1.0}, worker={"poll_seconds": 0.05}
    )
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        restorer = OutOfMemoryOnce()
        restorer.calls = 1  # past its simulated OOM: restores right away
        worker = Worker(settings, store, worker_id="w", restorer=restorer)
        assert worker.run_until_empty() == 2
        assert worker.model_loaded
        loop = threading.Thread(target=worker.run_forever)
        started = time.monotonic()
        loop.start()
        try:
            while worker.model_loaded and time.monotonic() - started < 10:
                time.sleep(0.02)
            elapsed = time.monotonic() - started
        finally:
            worker.request_stop()
            loop.join(10)
        assert not worker.model_loaded
        assert 0.5 < elapsed < 5  # after the idle timeout, not at once and not never
    finally:
        store.close()


class WrongSize:
    """A restorer with a bug: it returns half the reference's size."""

    name = "wrong-size"

    def restore(self, request: RestoreRequest) -> RestoreResult:
        return RestoreResult(request.reference[::2, ::2].copy(), Diagnostics())


def test_worker_goes_through_cores_checks(tmp_path: Path, tiny_library: Path) -> None:
    settings = make_settings(tmp_path)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        Worker(settings, store, worker_id="w", restorer=WrongSize()).run_until_empty()
        jobs = store.list_jobs()
        assert {job.state for job in jobs} == {"failed"}
        assert all("expected the reference's" in (job.last_error or "") for job in jobs)
        assert not any(Path(settings.output.tree).rglob("*.HEIC"))
    finally:
        store.close()
