"""The heartbeat: a thread that keeps a running job's lease alive and carries its progress.

A restoration can run for minutes inside one call, so the lease cannot be renewed from the job's
own thread. Progress reported by the restorer is passed along with the next beat (and at most
that often), so `lmd status` shows it without a database write per diffusion step. A lost lease
(another worker took the job after this one stalled) or a stop request (pause) cancels the
restoration through its cancel token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from core import CancelToken
from daemon.worker.interfaces import WorkerStore

log = structlog.get_logger(__name__)


class Heartbeat:
    """Renews a job's lease every few seconds on its own thread while the job runs.

    Progress reported by the restorer is passed along with the next beat (and at most that
    often), so `lmd status` shows it without a database write per diffusion step. A lost
    lease (another worker took the job after we stalled) cancels the restoration.
    """

    def __init__(
        self, store: WorkerStore, job_id: int, worker_id: str, lease: float, every: float,
        cancel: CancelToken, on_beat: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> None:
        self._store, self._job_id, self._worker_id = store, job_id, worker_id
        self._lease, self._every, self._cancel = lease, every, cancel
        self._on_beat = on_beat
        self._should_stop = should_stop or (lambda: None)
        self._stop = threading.Event()
        self.stop_reason: str | None = None
        self.progress: float = 0.0
        self.stage: str = "starting"
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)

    def report(self, fraction: float, stage: str) -> None:
        self.progress, self.stage = float(fraction), stage

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                alive = self._store.heartbeat(
                    self._job_id, self._worker_id, self._lease,
                    progress=self.progress, stage=self.stage,
                )
            except Exception as exc:  # a database hiccup: keep trying until the lease runs out
                log.warning("heartbeat_failed", job_id=self._job_id, error=str(exc))
                continue
            if not alive:
                self.lost = True
                log.warning("lease_lost", job_id=self._job_id)
                self._cancel.cancel()
                return
            reason = self._should_stop()
            if reason:
                self.stop_reason = reason
                self._cancel.cancel()
                return
            if self._on_beat:
                self._on_beat(self.progress, self.stage)
