"""Leases: claim the next due job, keep it by heartbeat, and finish it.

A claim is one short write transaction (`BEGIN IMMEDIATE` on SQLite, `FOR UPDATE SKIP LOCKED`
on PostgreSQL) that also returns expired leases to the queue. Every way out of `running` goes
through `_finish_running` (or `fail`), guarded on the lease owner: a worker that lost its lease
gets `LeaseLost` (or False/None) and its result is dropped.

Leases are fenced: each claim bumps the job's `lease_generation`, the worker hands that number
back with every call made on the job's behalf, and only the holder of the current generation
commits. `hold_lease` is the fence a write calls immediately before its rename; `succeed`
checks the generation in the transaction that records the result (and adds the output to the
index, `outputs.py`). The owner alone would not do: a configured `worker.id` is the same after a
restart, and a worker stopped past its lease wakes up with the same name as its successor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection, func, select

from daemon.store.errors import JobNotFound, LeaseLost
from daemon.store.jobs import Job, job_from_row, utcnow
from daemon.store.models import job_events, jobs
from daemon.store.outputs import OutputOps
from daemon.store.statements import SELECT_CANDIDATE, SELECT_EXPIRED, heartbeat_statement
from daemon.store.states import ACTIVE_STATES, CLAIMABLE_STATES, JobState

log = structlog.get_logger(__name__)

#: A failed attempt is retried after 60 s, then 120 s, 240 s... (see `backoff_seconds`).
BACKOFF_BASE_SECONDS = 60.0
#: Backoff doubles at most this many times: a delay never exceeds 32 times its base.
BACKOFF_MAX_DOUBLINGS = 5
EXPIRY_CHECK_SECONDS = 1.0


def backoff_seconds(base: float, earlier: int) -> float:
    """How long to wait before the next try, after `earlier` tries that went the same way:
    `base`, 2x, 4x ... up to 32x `base`. The one backoff rule for failed attempts (base 60 s,
    counted in attempts) and for deferrals (base `worker.defer_seconds`, counted in earlier
    deferrals, since a deferral hands its attempt back)."""
    return base * 2 ** min(max(earlier, 0), BACKOFF_MAX_DOUBLINGS)


def _superseded_instead(
    superseded_by: int | None,
    new: JobState,
    reason: str | None,
    values: dict[str, Any],
    now: datetime | None = None,
) -> tuple[JobState, str | None, dict[str, Any]]:
    """Where a running job would go back to the queue (`new` is pending or deferred), but newer
    inputs superseded it while it ran: cancelled instead. Its inputs are gone and the newer job
    already waits; queueing it again would restore stale content, and leave two jobs waiting
    for one asset. Returns the state, reason and column values to use."""
    if superseded_by is None or new not in CLAIMABLE_STATES:
        return new, reason, values
    return (
        JobState.CANCELLED,
        f"superseded by job {superseded_by}" + (f" ({reason})" if reason else ""),
        {**values, "not_before": None, "finished_at": now or utcnow()},
    )



class LeaseOps(OutputOps):
    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Take the next due job (highest priority, then oldest) under a lease, counting an
        attempt. Expired leases are returned to the queue first, in the same transaction."""
        return self._retrying(lambda conn: self._claim(conn, worker_id, lease_seconds))

    def _claim(self, conn: Connection, worker_id: str, lease_seconds: float) -> Job | None:
        now = utcnow()
        # Expired leases are looked for at most every EXPIRY_CHECK_SECONDS while there is
        # other work, and always before answering "nothing to do".
        checked = time.monotonic() - self._expiry_checked >= EXPIRY_CHECK_SECONDS
        if checked:
            self._requeue_expired(conn, now)
        candidate = conn.execute(SELECT_CANDIDATE, {"now": now}).first()
        if candidate is None and not checked and self._requeue_expired(conn, now):
            candidate = conn.execute(SELECT_CANDIDATE, {"now": now}).first()
        if candidate is None:
            return None
        row = self._transition(
            conn, candidate.id, candidate.state, JobState.RUNNING, "claimed", worker_id, now=now,
            attempts_delta=1,
            new_lease=True,
            returning=True,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            started_at=now,
            progress=0.0,
            stage=None,
        )
        if not row:  # pragma: no cover - the row is locked (PG) or the db is (SQLite)
            return None
        return job_from_row(row)

    def heartbeat(
        self,
        job_id: int,
        worker_id: str,
        lease_seconds: float,
        progress: float | None = None,
        stage: str | None = None,
        *,
        generation: int | None = None,
    ) -> bool:
        """Extend the lease (and record progress). False when the lease is no longer ours
        (another owner, or with `generation` another claim): the worker must stop and drop its
        result."""
        return self._extend(job_id, worker_id, lease_seconds, progress, stage, generation, False)

    def hold_lease(
        self, job_id: int, worker_id: str, generation: int, lease_seconds: float
    ) -> bool:
        """The fence: True (and the lease extended) only while `worker_id` holds the job under
        `generation` and the lease has not run out. A write calls it immediately before its
        rename and commits nothing when it says False."""
        return self._extend(job_id, worker_id, lease_seconds, None, None, generation, True)

    def _extend(
        self, job_id: int, worker_id: str, lease_seconds: float, progress: float | None,
        stage: str | None, generation: int | None, unexpired: bool,
    ) -> bool:
        now = utcnow()
        params: dict[str, Any] = {
            "jid": job_id,
            "owner": worker_id,
            "gen": generation,
            "now": now,
            "v_lease_expires_at": now + timedelta(seconds=lease_seconds),
            "v_heartbeat_at": now,
            "v_progress": None if progress is None else float(progress),
            "v_stage": stage,
        }
        stmt = heartbeat_statement(
            progress is not None, stage is not None, generation is not None, unexpired
        )
        with self._write() as conn:
            return conn.execute(stmt, params).rowcount == 1

    def _finish_running(
        self, job_id: int, worker_id: str, new: JobState, reason: str | None,
        generation: int | None = None, **values: Any,
    ) -> None:
        """Move a job this worker holds out of running in a transaction of its own;
        `LeaseLost` if it no longer holds it (see `_finish_in`)."""
        self._retrying(
            lambda conn: self._finish_in(
                conn, job_id, worker_id, new, reason, generation=generation, **values
            )
        )

    def _finish_in(
        self, conn: Connection, job_id: int, worker_id: str, new: JobState, reason: str | None,
        generation: int | None = None, **values: Any,
    ) -> None:
        """Move a job this worker holds (under `generation`, when given) out of running, in the
        caller's transaction; `LeaseLost` if it no longer holds it. A job that would go back to
        the queue is cancelled instead if newer inputs superseded it while it ran (see
        `_superseded_instead`)."""
        to, why, vals = new, reason, values
        if new in CLAIMABLE_STATES:
            newer = conn.execute(select(jobs.c.superseded_by).where(jobs.c.id == job_id)).scalar()
            to, why, vals = _superseded_instead(newer, new, reason, values)
        if not self._transition(
            conn, job_id, JobState.RUNNING, to, why, worker_id, owner=worker_id,
            generation=generation, **vals
        ):
            state = self._state_of(conn, job_id)
            raise LeaseLost(f"job {job_id} is {state.value}, no longer held by {worker_id}")

    def _lease_lost(self, job_id: int, worker_id: str, what: str, exc: LeaseLost) -> None:
        log.warning("lease lost", job_id=job_id, worker=worker_id, error=str(exc), action=what)

    def succeed(
        self,
        job_id: int,
        worker_id: str,
        output_path: str | None,
        output_signature: Mapping[str, Any] | None,
        provenance: Mapping[str, Any] | None,
        *,
        generation: int | None = None,
        kind: str | None = None,
        record: str | None = None,
        reason: str = "succeeded",
    ) -> None:
        """Record the written output, and, given its `kind` (how it was written), add it to the
        index of lmd's outputs (with `record`, the backup record of a replaced still), in one
        transaction.
        Raises `LeaseLost` if the job is no longer ours (with `generation`: no longer held
        under that claim); then nothing is recorded and the caller undoes its write."""
        signature = dict(output_signature) if output_signature is not None else None

        def run(conn: Connection) -> None:
            now = utcnow()
            self._finish_in(
                conn, job_id, worker_id, JobState.SUCCEEDED, reason, generation=generation,
                now=now, output_path=output_path, output_signature=signature,
                provenance=dict(provenance) if provenance is not None else None,
                finished_at=now, lease_owner=None, lease_expires_at=None,
                progress=1.0, last_error=None, force=False,
            )
            if kind is not None and output_path is not None and signature:
                self._record_output(conn, job_id, output_path, signature, kind, record, now)

        self._retrying(run)

    def fail(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        *,
        retryable: bool = True,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        generation: int | None = None,
    ) -> JobState | None:
        """Record a failed attempt: back to pending after `backoff_seconds(backoff_base,
        earlier failed attempts)` while attempts remain, else failed. Returns the new state,
        or None (nothing changed) when the worker no longer holds the job — so a worker's
        error handler never fails itself because the lease was lost meanwhile."""

        def run(conn: Connection) -> JobState | None:
            row = conn.execute(
                select(
                    jobs.c.attempts, jobs.c.max_attempts, jobs.c.state, jobs.c.lease_owner,
                    jobs.c.superseded_by, jobs.c.lease_generation,
                ).where(jobs.c.id == job_id)
            ).first()
            if row is None:
                raise JobNotFound(f"job {job_id} does not exist")
            stale = generation is not None and row.lease_generation != generation
            if row.state != JobState.RUNNING or row.lease_owner != worker_id or stale:
                lost = LeaseLost(f"job {job_id} is {row.state}, no longer held by {worker_id}")
                self._lease_lost(job_id, worker_id, "fail", lost)
                return None
            now = utcnow()
            common = {"last_error": error, "lease_owner": None, "lease_expires_at": None}
            if retryable and row.attempts < row.max_attempts:
                delay = backoff_seconds(backoff_base, row.attempts - 1)
                to, why, values = _superseded_instead(
                    row.superseded_by, JobState.PENDING,
                    f"attempt {row.attempts}/{row.max_attempts} failed: {error}",
                    {"not_before": now + timedelta(seconds=delay), **common}, now,
                )
                self._transition(
                    conn, job_id, JobState.RUNNING, to, why, worker_id, now=now,
                    owner=worker_id, generation=generation, **values
                )
                return to
            why = "not retryable" if not retryable else f"{row.attempts} attempts"
            self._transition(
                conn, job_id, JobState.RUNNING, JobState.FAILED, f"failed ({why}): {error}",
                worker_id, now=now, finished_at=now, owner=worker_id, generation=generation,
                **common,
            )
            return JobState.FAILED

        return self._retrying(run)

    def defer(
        self, job_id: int, worker_id: str, reason: str, base_seconds: float,
        *, generation: int | None = None,
    ) -> datetime | None:
        """Postpone without burning the attempt (no GPU, out of memory): claimable again after
        `backoff_seconds(base_seconds, earlier deferrals of this job)`, so a device that stays
        busy is asked less and less often. Returns when the job is due again, or None (and
        nothing changed) when the worker no longer holds the job."""

        def run(conn: Connection) -> datetime:
            earlier = conn.execute(
                select(func.count()).select_from(job_events).where(
                    job_events.c.job_id == job_id,
                    job_events.c.to_state == JobState.DEFERRED.value,
                )
            ).scalar_one()
            now = utcnow()
            due = now + timedelta(seconds=backoff_seconds(base_seconds, earlier))
            self._finish_in(
                conn, job_id, worker_id, JobState.DEFERRED, reason, generation=generation,
                now=now, not_before=due,
                attempts_delta=-1, lease_owner=None, lease_expires_at=None, last_error=reason,
            )
            return due

        try:
            return self._retrying(run)
        except LeaseLost as exc:
            self._lease_lost(job_id, worker_id, "defer", exc)
            return None

    def release(
        self, job_id: int, worker_id: str, reason: str, *, generation: int | None = None
    ) -> bool:
        """Hand the job back untouched (SIGTERM, pause): pending again, attempt not counted.
        False (and nothing changed) when the worker no longer holds the job."""
        try:
            self._finish_running(
                job_id, worker_id, JobState.PENDING, reason, generation,
                attempts_delta=-1, lease_owner=None, lease_expires_at=None,
            )
        except LeaseLost as exc:
            self._lease_lost(job_id, worker_id, "release", exc)
            return False
        return True

    def skip(
        self, job_id: int, reason: str, *, worker_id: str | None = None,
        generation: int | None = None,
    ) -> bool:
        """Nothing to do for this job (e.g. its inputs changed since the scan; the next scan
        that sees them consistent queues it again). A worker passes its id and lease
        generation: a job it no longer holds is left alone (False)."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if state not in ACTIVE_STATES:
                return False
            if worker_id is not None and state != JobState.RUNNING:
                return False
            now = utcnow()
            return self._transition(
                conn, job_id, state, JobState.SKIPPED, reason, worker_id, now=now,
                owner=worker_id, generation=generation,
                finished_at=now, lease_owner=None, lease_expires_at=None,
            )

        return self._retrying(run)

    def requeue_expired(self) -> int:
        """Return running jobs whose lease ran out to the queue (or fail them when their
        attempts are used up). Returns how many were handled."""
        return self._retrying(lambda conn: self._requeue_expired(conn, utcnow()))

    def _requeue_expired(self, conn: Connection, now: datetime) -> int:
        self._expiry_checked = time.monotonic()
        rows = conn.execute(SELECT_EXPIRED, {"now": now}).all()
        handled = 0
        for row in rows:
            error = f"lease expired (worker {row.lease_owner})"
            common = {"last_error": error, "lease_owner": None, "lease_expires_at": None}
            if row.attempts >= row.max_attempts:
                to, why = JobState.FAILED, f"{error}; {row.attempts} attempts used"
                values = {**common, "finished_at": now}
            else:
                to, why, values = _superseded_instead(
                    row.superseded_by, JobState.PENDING, error, common, now
                )
            # Guarded on the expired owner: on PostgreSQL the rows were read without a lock,
            # and another box may have requeued and claimed the job since (a fresh lease).
            if self._transition(
                conn, row.id, JobState.RUNNING, to, why, now=now, owner=row.lease_owner, **values
            ):
                handled += 1
                log.warning("lease expired", job_id=row.id, worker=row.lease_owner)
        return handled
