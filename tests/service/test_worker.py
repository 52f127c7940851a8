"""The worker's outcome table (`daemon.worker.job`), row by row, against in-memory fakes of the
store, the files and the restorer (milliseconds each); then the loop's decisions (pause,
windows, idle unload); and two end-to-end checks on real files and SQLite."""

from __future__ import annotations

import dataclasses
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core import DeviceUnavailable, OutOfDeviceMemory
from daemon.files.errors import UnreadableFile
from daemon.output import NameTooLong, ReadOnlyLibrary
from daemon.scanner import run_scan
from daemon.settings import Settings
from daemon.store import open_store
from daemon.store.states import WorkerState
from daemon.worker import Outcome, Worker
from daemon.worker.restorers import RestorerHolder
from tests.service.fakes import (
    OUTPUT,
    FakeFiles,
    FakeStore,
    Raising,
    UntilCancelled,
    Upscale,
    make_job,
    wait_for,
)
from tests.service.helpers import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings that differ from the fake jobs' pinned values wherever a job pins one, so a
    worker reading the settings instead of the row would be caught."""
    return make_settings(
        tmp_path,
        restorer={"name": "guided", "params": {"seed": 99}},
        output={"location": "beside", "heic_quality": 10},
        worker={"heartbeat_seconds": 0.01, "lease_seconds": 30, "defer_seconds": 7},
    )


def run(settings: Settings, store: FakeStore, files: FakeFiles, restorer: Upscale) -> Outcome:
    worker = Worker(settings, store, worker_id="w", restorer=restorer, files=files)
    job = store.claim("w", 30)
    assert job is not None
    return worker._run_claimed(job)


# ---------------------------------------------------------------------- the outcome table


def test_success_runs_and_records_the_job_as_its_row_says(settings: Settings) -> None:
    store, files, restorer = FakeStore(make_job(7)), FakeFiles(), Upscale()
    assert run(settings, store, files, restorer) is Outcome.SUCCEEDED
    [(method, details)] = store.finished()
    assert method == "succeed"
    [plan] = files.planned
    assert plan.kind == "sidecar-tree" and details["path"] == str(plan.destination)
    assert plan.destination == OUTPUT.tree / "2026" / "IMG_E0007.HEIC"  # the row's tree
    assert details["signature"]["content_hash"] == "blake3:00"
    [request] = restorer.requests
    assert request.restorer == "guided" and request.params == {"seed": 3} and request.seed == 3
    provenance = details["provenance"]
    assert (provenance["restorer"], provenance["params"], provenance["job_id"]) == (
        "guided", {"seed": 3}, 7)
    assert provenance["weights_digest"] == "none" and provenance["seconds"] >= 0
    assert files.written == [(plan.destination, provenance)]


def test_changed_inputs_skip_without_planning_or_restoring(settings: Settings) -> None:
    store, files, restorer = FakeStore(make_job()), FakeFiles(unchanged=False), Upscale()
    assert run(settings, store, files, restorer) is Outcome.SKIPPED
    assert store.finished() == [("skip", {"reason": "the reference IMG_0001.HEIC changed or "
                                          "moved since the scan; the next scan queues it "
                                          "again"})]
    assert files.planned == [] and restorer.requests == []
    assert store.generations["skip"] == 1  # guarded on this claim: never another's job


@pytest.mark.parametrize("error", [OutOfDeviceMemory("CUDA out of memory"),
                                   DeviceUnavailable("no GPU")])
def test_device_trouble_defers_and_drops_the_model(settings: Settings, error: Exception) -> None:
    store, files, restorer = FakeStore(make_job()), FakeFiles(), Raising(error)
    worker = Worker(settings, store, worker_id="w", restorer=restorer, files=files)
    assert worker.run_once(ignore_windows=True)
    [(method, details)] = store.finished()
    assert method == "defer" and details["reason"] == f"{type(error).__name__}: {error}"
    assert details["base_seconds"] == 7  # worker.defer_seconds; the store grows it
    assert not worker.model_loaded


def test_a_stop_request_releases_the_job(settings: Settings) -> None:
    store, files, restorer = FakeStore(make_job()), FakeFiles(), UntilCancelled()
    worker = Worker(settings, store, worker_id="w", restorer=restorer, files=files)
    stopper = threading.Thread(target=lambda: (restorer.started.wait(30), worker.request_stop()))
    stopper.start()
    assert worker.run_once(ignore_windows=True)
    stopper.join()
    assert store.finished() == [("release", {"reason": "cancelled (stop)"})]


def test_pause_during_a_job_releases_it_between_steps(settings: Settings) -> None:
    store, files, restorer = FakeStore(make_job()), FakeFiles(), UntilCancelled()
    pauser = threading.Thread(target=lambda: (restorer.started.wait(30),
                                              setattr(store, "paused", True)))
    pauser.start()
    assert run(settings, store, files, restorer) is Outcome.RELEASED
    pauser.join()
    assert store.finished() == [("release", {"reason": "cancelled (paused)"})]
    assert files.written == []


def test_a_lost_lease_stops_the_job_and_records_nothing(settings: Settings) -> None:
    store, files, restorer = FakeStore(make_job()), FakeFiles(), UntilCancelled()
    loser = threading.Thread(target=lambda: (restorer.started.wait(30),
                                             setattr(store, "lease_held", False)))
    loser.start()
    assert run(settings, store, files, restorer) is Outcome.LEASE_LOST
    loser.join()
    assert store.finished() == [] and files.written == []
    assert store.generations["heartbeat"] == 1  # renews only the lease of this claim


def test_the_fence_refuses_a_write_whose_lease_is_gone(settings: Settings) -> None:
    """The heartbeat never noticed (it beats rarely), but the fence the writer calls
    immediately before its rename finds the lease gone: nothing is written, and the job is
    neither failed nor released in the other worker's name (FenceLost is not an output error
    to retry)."""
    store, files = FakeStore(make_job()), FakeFiles()

    class LosesLeaseWhileWriting(FakeFiles):
        def write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            store.lease_held = False
            return files.write(*args, **kwargs)

    assert run(settings, store, LosesLeaseWhileWriting(), Upscale()) is Outcome.LEASE_LOST
    assert store.finished() == [] and files.written == []
    assert store.fences == 1 and store.generations["fence"] == 1


def test_a_lease_lost_after_the_rename_takes_the_write_back(settings: Settings) -> None:
    """The fence passed and the output was renamed into place, then `succeed` finds the job
    taken: the worker asks the files to take back exactly what it wrote, and records nothing."""
    store = FakeStore(make_job(output=dataclasses.replace(OUTPUT, mode="replace")))

    class LosesLeaseAfterWriting(FakeFiles):
        def write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            signature = super().write(*args, **kwargs)
            store.lease_held = False
            return signature

    files = LosesLeaseAfterWriting()
    assert run(settings, store, files, Upscale()) is Outcome.LEASE_LOST
    assert store.finished() == [] and len(files.written) == 1
    assert files.undone == [FakeFiles.WRITTEN]
    assert store.generations["succeed"] == 1


def test_success_is_recorded_under_the_claim_with_the_output_for_the_index(
    settings: Settings,
) -> None:
    job = make_job(output=dataclasses.replace(OUTPUT, mode="replace"), lease_generation=4)
    store, files = FakeStore(job), FakeFiles()
    assert run(settings, store, files, Upscale()) is Outcome.SUCCEEDED
    [(method, details)] = store.finished()
    assert method == "succeed"
    assert (details["kind"], details["record"]) == ("replace", "/state/backups/record.lmd.json")
    assert store.generations["succeed"] == store.generations["fence"] == 5
    assert files.undone == []


def test_an_output_still_in_place_is_not_redone_unless_forced(settings: Settings) -> None:
    """Reprocess (or retry) without --force: the output the job recorded is still there and
    unchanged, so the job succeeds again without restoring; with --force it is redone."""
    done = {"output_path": "/state/restored/2026/IMG_E0001.HEIC",
            "output_signature": {"size": 5, "mtime_ns": 2, "content_hash": "blake3:77"},
            "provenance": {"restorer": "guided"}}
    store, files, restorer = FakeStore(make_job(**done)), FakeFiles(in_place=True), Upscale()
    assert run(settings, store, files, restorer) is Outcome.SUCCEEDED
    [(method, details)] = store.finished()
    assert method == "succeed"
    assert details["path"] == done["output_path"]
    assert details["signature"] == done["output_signature"] and details["kind"] is None
    assert "reprocess --force redoes it" in details["reason"]
    assert restorer.requests == [] and files.written == []

    store = FakeStore(make_job(force=True, **done))
    assert run(settings, store, files, restorer) is Outcome.SUCCEEDED
    assert len(restorer.requests) == 1 and len(files.written) == 1


class WrongSize(Upscale):
    """A restorer with a bug: it returns half the reference's size; core's check refuses it."""

    def restore(self, request):  # type: ignore[no-untyped-def]
        result = super().restore(request)
        return dataclasses.replace(result, image=request.reference[::2, ::2].copy())


@pytest.mark.parametrize(
    ("job", "files", "restorer", "reason", "before_restoring"),
    [
        pytest.param(make_job(output=None), FakeFiles(), Upscale(),
                     "was enqueued before lmd pinned the output", True, id="no pinned output"),
        pytest.param(make_job(output=dataclasses.replace(OUTPUT, location="beside",
                                                         suffix=".lmd")),
                     FakeFiles(), Upscale(),
                     "bad output setting: output suffix '.lmd' starts with a dot", True,
                     id="bad output suffix"),
        pytest.param(make_job(), FakeFiles(plan_error=ReadOnlyLibrary("library is read-only: "
                                                                      "/photos/2026")),
                     Upscale(), "library is read-only: /photos/2026", True,
                     id="read-only library"),
        pytest.param(make_job(), FakeFiles(write_error=NameTooLong("name too long: IMG")),
                     Upscale(), "name too long: IMG", False, id="permanent write error"),
        pytest.param(make_job(weights_digest="blake3-checkpoint:0f"), FakeFiles(), Upscale(),
                     "but the configured weights are none", True, id="weights changed"),
        pytest.param(make_job(), FakeFiles(load_error=UnreadableFile("truncated")), Upscale(),
                     "unreadable input: truncated", True, id="unreadable input"),
        pytest.param(make_job(), FakeFiles(), WrongSize(),
                     "restore failed: restorer 'guided' returned (8, 8), expected the "
                     "reference's (16, 16)", False, id="restorer broke core's contract"),
    ],
)
def test_failures_retrying_cannot_help_fail_at_once(
    settings: Settings, job, files: FakeFiles, restorer: Upscale, reason: str,
    before_restoring: bool,
) -> None:
    store = FakeStore(job)
    assert run(settings, store, files, restorer) is Outcome.FAILED
    [(method, details)] = store.finished()
    assert method == "fail" and details["retryable"] is False
    assert reason in details["error"], details["error"]
    assert files.written == []
    assert (restorer.requests == []) is before_restoring


def test_an_unexpected_error_is_a_retryable_attempt(settings: Settings) -> None:
    """A failed write (a full disk, say): the store decides pending or failed by attempts."""
    store = FakeStore(make_job())
    files = FakeFiles(write_error=OSError(28, "No space left on device"))
    assert run(settings, store, files, Upscale()) is Outcome.RETRY
    [(method, details)] = store.finished()
    assert method == "fail" and details["retryable"] is True
    assert details["error"] == "OSError: [Errno 28] No space left on device"


def test_the_restorer_named_by_the_job_is_checked_not_the_configured_one(
    settings: Settings,
) -> None:
    """A job for a restorer with weights ('livemoments' with a checkpoint digest) is refused
    while the settings configure none: its weights are not here."""
    job = make_job(restorer="livemoments", weights_digest="blake3-checkpoint:0f")
    store = FakeStore(job)
    assert run(settings, store, FakeFiles(), Upscale()) is Outcome.FAILED
    [(_, details)] = store.finished()
    assert "enqueued for livemoments weights blake3-checkpoint:0f" in details["error"]


def test_weights_digest_of_a_weight_free_restorer_imports_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, core.registry as r; d = r.weights_digest('guided', {}); "
            "print(d, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["none", "False"], out.stderr


# ----------------------------------------------------------------------------- the loop


def test_paused_or_outside_the_window_nothing_is_claimed(tmp_path: Path) -> None:
    now = datetime.now()
    window = f"{(now + timedelta(hours=2)):%H}:00-{(now + timedelta(hours=3)):%H}:00"
    settings = make_settings(tmp_path, worker={"windows": [window]})
    store = FakeStore(make_job(), paused=True)
    worker = Worker(settings, store, worker_id="w", restorer=Upscale(), files=FakeFiles())
    assert worker.run_once() is False
    assert store.workers["w"]["state"] is WorkerState.PAUSED
    store.paused = False
    assert worker.run_once() is False
    assert store.workers["w"]["state"] is WorkerState.OUTSIDE_WINDOW
    assert store.workers["w"]["window"] == window and len(store.waiting) == 1
    assert worker.run_once(ignore_windows=True) is True  # `lmd work` ignores windows
    assert store.waiting == [] and store.workers["w"]["state"] is WorkerState.IDLE


def test_an_idle_worker_unloads_the_model_after_the_idle_timeout(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, restorer={"idle_unload_seconds": 600})
    now = [1000.0]
    worker = Worker(settings, FakeStore(make_job()), worker_id="w", restorer=Upscale(),
                    files=FakeFiles())
    worker.restorers = RestorerHolder(settings, Upscale(), clock=lambda: now[0])
    assert worker.run_until_empty() == 1 and worker.model_loaded
    now[0] += 599
    worker._maybe_unload()
    assert worker.model_loaded  # not before the timeout
    now[0] += 2
    worker._maybe_unload()
    assert not worker.model_loaded


def test_run_forever_unloads_an_idle_model_and_stops_on_request(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, restorer={"idle_unload_seconds": 0},
                             worker={"poll_seconds": 0.01})
    worker = Worker(settings, FakeStore(make_job()), worker_id="w", restorer=Upscale(),
                    files=FakeFiles())
    loop = threading.Thread(target=worker.run_forever)
    loop.start()
    try:
        wait_for(lambda: not worker.model_loaded and worker.store.finished(), "the unload")
    finally:
        worker.request_stop()
        loop.join(30)
    assert not loop.is_alive()
    assert worker.store.workers["w"]["state"] is WorkerState.STOPPED


# ------------------------------------------------------------------ on real files and SQLite


def test_an_output_tree_that_is_a_file_fails_before_restoring(tmp_path: Path,
                                                              tiny_library: Path) -> None:
    """Planned and checked on the real filesystem: nothing is restored, nothing is left, and
    the job fails with the reason instead of being retried."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the output tree should be")
    settings = make_settings(tmp_path, output={"tree": blocker})
    store = open_store(settings.database_url)
    try:
        run_scan(settings, tiny_library, store=store)
        restorer = Upscale()
        worker = Worker(settings, store, worker_id="w", restorer=restorer)
        assert worker.run_once(ignore_windows=True)
        [failed] = [job for job in store.list_jobs() if job.attempts == 1]
        assert failed.state == "failed" and restorer.requests == []
        assert "in the way" in failed.last_error and str(blocker) in failed.last_error
        assert blocker.read_text() == "a file where the output tree should be"
        assert not any(p.name.startswith(".lmd-tmp") for p in tmp_path.rglob("*"))
    finally:
        store.close()


def test_inputs_changed_or_corrupt_after_the_scan(tmp_path: Path, tiny_library: Path) -> None:
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
    from daemon.status import STALE_WORKER_SECONDS, with_staleness

    now = datetime.now(UTC)
    old = now - timedelta(seconds=STALE_WORKER_SECONDS + 5)
    assert with_staleness({"state": "idle", "heartbeat_at": now})["stale"] is False
    assert with_staleness({"state": "running", "heartbeat_at": old.isoformat()})["stale"] is True
    assert with_staleness({"state": "stopped", "heartbeat_at": old})["stale"] is False
