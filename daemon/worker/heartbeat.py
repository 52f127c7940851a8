"""The heartbeat: a thread that keeps a running job's lease alive and carries its progress.

A restoration can run for minutes inside one call, so the lease cannot be renewed from the job's
own thread. Progress reported by the restorer (stage and fraction) is published by this thread
too: every `PROGRESS_SECONDS` when it changed, so `lmd status` polled every few seconds sees a
job move (the lease is renewed only every `worker.heartbeat_seconds`, 20 s by default, longer
than many jobs), and never a database write per diffusion step. A lost lease (another worker
took the job after this one stalled) or a stop request (pause) cancels the restoration through
its cancel token.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from core import CancelToken
from daemon.worker.interfaces import WorkerStore

log = structlog.get_logger(__name__)

PROGRESS_SECONDS = 1.0
"""How often changed progress is published (`on_beat`): at most one small write a second."""


class Heartbeat:
    """Renews a job's lease every `every` seconds on its own thread while the job runs, and
    publishes changed progress through `on_beat` every `PROGRESS_SECONDS` (and with each
    renewal). A lost lease (another worker took the job after we stalled) cancels the
    restoration.
    """

    def __init__(
        self, store: WorkerStore, job_id: int, worker_id: str, lease: float, every: float,
        cancel: CancelToken, on_beat: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
        generation: int | None = None,
    ) -> None:
        self._store, self._job_id, self._worker_id = store, job_id, worker_id
        self._lease, self._every, self._cancel = lease, every, cancel
        self._on_beat = on_beat
        self._generation = generation  # the claim's fencing token: renew only that lease
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
        tick = min(self._every, PROGRESS_SECONDS)
        renew_at = time.monotonic() + self._every
        published = (self.progress, self.stage)
        while not self._stop.wait(tick):
            if time.monotonic() < renew_at - tick / 10:  # a wait may end a hair early
                if (self.progress, self.stage) != published:
                    published = (self.progress, self.stage)
                    self._publish(*published)
                continue
            renew_at = time.monotonic() + self._every
            published = (self.progress, self.stage)
            try:
                alive = self._store.heartbeat(
                    self._job_id, self._worker_id, self._lease,
                    progress=self.progress, stage=self.stage, generation=self._generation,
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
            self._publish(*published)

    def _publish(self, fraction: float, stage: str) -> None:
        if self._on_beat is None:
            return
        try:
            self._on_beat(fraction, stage)
        except Exception as exc:  # progress is for people; a failed write must not stop beats
            log.warning("progress_not_published", job_id=self._job_id, error=str(exc))
