"""`Worker`: claims one job at a time under a lease and runs it (`run_job`), until told to stop.

The loop decides *whether* to work (paused, outside the worker windows, nothing due) and keeps
the worker's row in the store current for `lmd status`; what happens to a job is `run_job`'s
table. An idle worker lets go of its model after `restorer.idle_unload_seconds`. A `watcher`
(`lmd work`'s and `lmd demo`'s progress display) hears each job start, progress and end.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from core import CancelToken, Restorer
from daemon.restorer_config import clip_restorer_options
from daemon.review.gate import FinishStep, PublishDirectly, ReviewGate
from daemon.scheduler import describe_windows, in_windows
from daemon.settings import Settings
from daemon.store import Job
from daemon.store.states import WorkerState
from daemon.worker.files import LibraryFiles
from daemon.worker.interfaces import JobFiles, WorkerStore
from daemon.worker.job import JobContext, Outcome, run_job
from daemon.worker.restorers import RestorerHolder
from daemon.worker.video_job import run_video_job

#: An idle worker refreshes its row this often, so `lmd status` can tell a dead one (no
#: refresh for several periods) from one that is merely waiting.
WORKER_REFRESH_SECONDS = 60.0


class JobWatcher(Protocol):
    """Someone showing a person the jobs as they run: `started` and `finished` on the worker's
    thread, `progress` from the job's heartbeat thread (about once a second, on changes)."""

    def started(self, job: Job) -> None: ...

    def progress(self, job: Job, fraction: float, stage: str) -> None: ...

    def finished(self, job: Job, outcome: str) -> None: ...


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    """Claims and runs jobs until told to stop. One per device.

    `restorer` (a ready instance, used for every job) and `files` replace the real ones, for
    tests and embedders; the daemon passes neither.
    """

    def __init__(
        self,
        settings: Settings,
        store: WorkerStore,
        worker_id: str | None = None,
        on_alive: Callable[[], None] | None = None,
        restorer: Restorer | None = None,
        files: JobFiles | None = None,
        review: FinishStep | None = None,
        watcher: JobWatcher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = worker_id or settings.worker.id or default_worker_id()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.restorers = RestorerHolder(settings, restorer)
        self.files = files or LibraryFiles(index=store)
        # checks, staging and publishers (daemon.review); `files` passed in stand for the
        # library, so they are written to directly
        self.review = review or (PublishDirectly() if files else ReviewGate(settings, store))
        self._on_alive = on_alive or (lambda: None)
        self.watcher = watcher
        self._current_cancel: CancelToken | None = None
        self._state = WorkerState.STARTING
        self._published_at = 0.0

    # ----------------------------------------------------------------- control from outside
    def request_stop(self) -> None:
        """SIGTERM: stop claiming, cancel the running job between steps (it is released)."""
        self.stop_event.set()
        self.wake_event.set()
        if self._current_cancel is not None:
            self._current_cancel.cancel()

    def wake(self) -> None:
        self.wake_event.set()

    @property
    def model_loaded(self) -> bool:
        """Whether a restorer (and so, for `livemoments`, its weights) is held in memory."""
        return self.restorers.loaded

    # ----------------------------------------------------------------------- the main loop
    def run_forever(self) -> None:
        self._publish(WorkerState.IDLE)
        while not self.stop_event.is_set():
            self._on_alive()
            ran = self.run_once()
            if not ran:
                self.follow_records()
                self._maybe_unload()
                self.wake_event.wait(self.settings.worker.poll_seconds)
                self.wake_event.clear()
        self.review.close()  # waiting hooks get a few seconds, viewer deliveries stop
        self._publish(WorkerState.STOPPED)

    def run_until_empty(self, max_jobs: int | None = None) -> int:
        """Run claimable jobs now, windows ignored, until none is left (`lmd work`, `lmd demo`)."""
        self.follow_records()
        done = 0
        while not self.stop_event.is_set() and (max_jobs is None or done < max_jobs):
            if not self.run_once(ignore_windows=True):
                break
            done += 1
        self.review.close()
        self._publish(WorkerState.STOPPED)  # the process ends after this: not idle, gone
        return done

    def run_once(self, ignore_windows: bool = False) -> bool:
        """Claim and run one job; False when nothing was claimable (or not allowed now)."""
        self.store.requeue_expired()
        if self.store.is_paused():
            self._publish(WorkerState.PAUSED)
            return False
        windows = self.settings.worker.windows
        if not ignore_windows and not in_windows(windows, datetime.now().astimezone()):
            self._publish(WorkerState.OUTSIDE_WINDOW)
            return False
        job = self.store.claim(self.worker_id, self.settings.worker.lease_seconds)
        if job is None:
            self._publish(WorkerState.IDLE)
            return False
        self._run_claimed(job)
        return True

    def _run_claimed(self, job: Job) -> Outcome:
        cancel = CancelToken()
        self._current_cancel = cancel
        if self.stop_event.is_set():
            cancel.cancel()
        self._publish(WorkerState.RUNNING, job_id=job.id, progress=0.0, stage="loading")
        if self.watcher is not None:
            self.watcher.started(job)
        work = self.settings.worker
        ctx = JobContext(
            store=self.store,
            files=self.files,
            restorers=self.restorers,
            worker_id=self.worker_id,
            lease_seconds=work.lease_seconds,
            heartbeat_seconds=work.heartbeat_seconds,
            defer_seconds=work.defer_seconds,
            on_progress=lambda fraction, stage: self._progress(job, fraction, stage),
            on_alive=self._on_alive,
            should_stop=lambda: "paused" if self.store.is_paused() else None,
            review=self.review,
        )
        try:
            if job.kind == "video":  # `[video] enabled`: its own run, the same outcomes
                options = clip_restorer_options(self.settings, job.restorer)
                outcome = run_video_job(job, ctx, cancel, options=options)
            else:
                outcome = run_job(job, ctx, cancel)
            self.review.job_ended(job.id, outcome.value)  # hooks and viewers, at once
            if self.watcher is not None:
                self.watcher.finished(job, outcome.value)
            return outcome
        finally:
            self._current_cancel = None
            self._publish(WorkerState.IDLE)

    # ------------------------------------------------------------------------- helpers
    def _progress(self, job: Job, fraction: float, stage: str) -> None:
        self._publish(WorkerState.RUNNING, job_id=job.id, progress=fraction, stage=stage)
        if self.watcher is not None:
            self.watcher.progress(job, fraction, stage)

    def follow_records(self) -> int:
        """Make the backup records of replaced stills that a scan found under new paths name
        those paths (the scanner writes no files; the worker does)."""
        return self.files.follow_records(self.store)

    def _maybe_unload(self) -> None:
        idle = self.settings.restorer.idle_unload_seconds
        if self.restorers.loaded and self.restorers.idle_seconds() > idle:
            self.restorers.drop()

    def _publish(
        self, state: WorkerState, *, job_id: int | None = None, progress: float | None = None,
        stage: str | None = None,
    ) -> None:
        """Keep this worker's row current for `lmd status`: on changes of state, and with the
        running job's progress on every heartbeat."""
        now = time.monotonic()
        fresh = now - self._published_at < WORKER_REFRESH_SECONDS
        if state == self._state and job_id is None and fresh:
            return
        self._state, self._published_at = state, now
        self.store.upsert_worker(
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            state=state,
            job_id=job_id,
            progress=progress,
            stage=stage,
            window=describe_windows(self.settings.worker.windows),
            restorer=self.settings.restorer.name,
            device=self.settings.restorer.device,
        )
