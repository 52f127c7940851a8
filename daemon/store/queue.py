"""`JobStore`: the job queue and everything else lmd keeps in its database.

Modelled on procrastinate: explicit states (`states.py`), every state change through one
function (`_transition`) that checks `TRANSITIONS` and writes a `job_events` row in the same
transaction, claims that are one short write transaction (`BEGIN IMMEDIATE` on SQLite,
`FOR UPDATE SKIP LOCKED` on PostgreSQL) and leases renewed by heartbeat. Callers get plain
dataclasses, never ORM objects tied to a session.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError

from daemon.store.db import IMMEDIATE, StoreError
from daemon.store.models import assets, backups, control, job_events, jobs, scans, workers
from daemon.store.states import (
    ACTIVE_STATES,
    CLAIMABLE_STATES,
    FINISHED_STATES,
    JobState,
    check_transition,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")

PAUSED_KEY = "paused"
DEFAULT_MAX_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_MAX_SECONDS = 3600.0
EXPIRY_CHECK_SECONDS = 1.0
#: the asset paths inside a payload; a change here with the same identity is a move
PATH_FIELDS = ("reference", "video", "target", "sidecars")


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaseLost(StoreError):
    """The worker no longer holds this job (lease expired and requeued, or cancelled)."""


class JobNotFound(StoreError):
    """No job with that id."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the caller knows when enqueueing; `identity` comes from `job_identity(...)`."""

    identity: str
    asset_key: str
    payload: dict[str, Any]
    restorer: str
    weights_digest: str
    params: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: int
    created: bool
    superseded: list[int] = field(default_factory=list)
    moved: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one `jobs` row."""

    id: int
    identity: str
    asset_key: str
    state: JobState
    priority: int
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    not_before: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]
    restorer: str
    weights_digest: str
    params: dict[str, Any]
    force: bool
    output_path: str | None
    output_signature: dict[str, Any] | None
    provenance: dict[str, Any] | None
    progress: float | None
    stage: str | None
    superseded_by: int | None

    @property
    def path(self) -> str | None:
        """The file a person recognises this job by: the target still, else the reference."""
        return self.payload.get("target") or self.payload.get("reference") or self.asset_key

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state.value
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: int
    job_id: int
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str | None
    worker: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "at": self.at.isoformat(),
            "from_state": self.from_state.value if self.from_state else None,
            "to_state": self.to_state.value,
            "reason": self.reason,
            "worker": self.worker,
        }


_JOB_FIELDS = [f.name for f in fields(Job)]


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    data["state"] = JobState(data["state"])
    return Job(**{name: data[name] for name in _JOB_FIELDS})


def _plain_row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


def _paths(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: payload.get(k) for k in PATH_FIELDS}


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


# ---- prebuilt statements ------------------------------------------------------------------
# The hot path (claim, heartbeat, finish) executes statement objects built once: SQLAlchemy
# then reuses their cache key and compiled form, which is most of the cost of a short
# transaction on SQLite.

_INSERT_EVENT = insert(job_events)
_SELECT_JOB = select(jobs).where(jobs.c.id == bindparam("jid"))
_SELECT_CANDIDATE = (
    select(jobs.c.id, jobs.c.state)
    .where(
        or_(*(jobs.c.state == s.value for s in sorted(CLAIMABLE_STATES))),
        or_(jobs.c.not_before.is_(None), jobs.c.not_before <= bindparam("now")),
    )
    .order_by(jobs.c.priority.desc(), jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)  # PostgreSQL: concurrent claimers skip locked rows
)
_SELECT_EXPIRED = (
    select(
        jobs.c.id, jobs.c.lease_owner, jobs.c.attempts, jobs.c.max_attempts, jobs.c.superseded_by
    )
    .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < bindparam("now"))
    .order_by(jobs.c.id)  # concurrent claimers lock expired rows in one order: no deadlock
)
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _transition_statement(
    keys: tuple[str, ...], guarded: bool, attempts_delta: int, returning: bool
) -> Any:
    """UPDATE jobs SET state, updated_at, <keys> [, attempts = attempts + :delta]
    WHERE id = :id AND state = :from [AND lease_owner = :owner] [RETURNING *]."""
    cache_key = ("transition", keys, guarded, attempts_delta != 0, returning)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        cond = [jobs.c.id == bindparam("_id"), jobs.c.state == bindparam("_from")]
        if guarded:
            cond.append(jobs.c.lease_owner == bindparam("_owner"))
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in keys}
        values.update(state=bindparam("_to"), updated_at=bindparam("_now"))
        if attempts_delta:
            values["attempts"] = jobs.c.attempts + bindparam("_delta")
        stmt = update(jobs).where(*cond).values(values)
        if returning:
            stmt = stmt.returning(*jobs.c)
        _STATEMENTS[cache_key] = stmt
    return stmt


def _heartbeat_statement(with_progress: bool, with_stage: bool) -> Any:
    cache_key = ("heartbeat", with_progress, with_stage)
    stmt = _STATEMENTS.get(cache_key)
    if stmt is None:
        values = {
            "lease_expires_at": bindparam("v_lease_expires_at"),
            "heartbeat_at": bindparam("v_heartbeat_at"),
        }
        if with_progress:
            values["progress"] = bindparam("v_progress")
        if with_stage:
            values["stage"] = bindparam("v_stage")
        stmt = _STATEMENTS[cache_key] = (
            update(jobs)
            .where(
                jobs.c.id == bindparam("jid"),
                jobs.c.state == JobState.RUNNING.value,
                jobs.c.lease_owner == bindparam("owner"),
            )
            .values(values)
        )
    return stmt


class JobStore:
    """The queue and bookkeeping over one engine. Thread-safe (one connection per call);
    open one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._expiry_checked = -math.inf

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transactions --------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One short write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _retrying(self, fn: Callable[[Connection], T], attempts: int = 8) -> T:
        """Run `fn` in a write transaction, retrying races a retry resolves: a unique
        violation between two enqueuers or a deadlock (PostgreSQL), a busy database (SQLite)."""
        for attempt in range(attempts):
            try:
                with self._write() as conn:
                    return fn(conn)
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
            except SAOperationalError as exc:
                text = str(exc.orig).lower()
                transient = any(w in text for w in ("locked", "busy", "deadlock", "serializ"))
                if not transient or attempt == attempts - 1:
                    raise
            time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
        raise AssertionError("unreachable")

    # ---- the one place where states change ------------------------------------------

    def _transition(
        self,
        conn: Connection,
        job_id: int,
        current: JobState | str,
        new: JobState,
        reason: str | None,
        worker: str | None = None,
        *,
        now: datetime | None = None,
        owner: str | None = None,
        attempts_delta: int = 0,
        returning: bool = False,
        **values: Any,
    ) -> Any:
        """Move one job from `current` to `new` (checked against TRANSITIONS), set `values`
        (and add `attempts_delta` to attempts), and record the event — all in the caller's
        transaction. The UPDATE is guarded on the current state (and on the lease `owner`
        when given), so a racing change makes it return False instead of corrupting the row.
        Returns True on success, or the updated row when `returning`."""
        check_transition(current, new)
        now = now or utcnow()
        stmt = _transition_statement(
            tuple(sorted(values)), owner is not None, attempts_delta, returning
        )
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(
            _id=job_id, _from=JobState(current).value, _to=new.value, _now=now,
            _owner=owner, _delta=attempts_delta,
        )
        result = conn.execute(stmt, params)
        row = result.first() if returning else None
        if (row is None) if returning else (result.rowcount != 1):
            return False
        self._event(conn, job_id, JobState(current), new, reason, worker, now)
        return row if returning else True

    @staticmethod
    def _event(
        conn: Connection,
        job_id: int,
        from_state: JobState | None,
        to_state: JobState,
        reason: str | None,
        worker: str | None,
        now: datetime,
    ) -> None:
        conn.execute(
            _INSERT_EVENT,
            {
                "job_id": job_id,
                "at": now,
                "from_state": from_state.value if from_state else None,
                "to_state": to_state.value,
                "reason": reason,
                "worker": worker,
            },
        )

    def _state_of(self, conn: Connection, job_id: int) -> JobState:
        state = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).scalar()
        if state is None:
            raise JobNotFound(f"job {job_id} does not exist")
        return JobState(state)

    # ---- enqueue ---------------------------------------------------------------------

    def enqueue(self, spec: JobSpec) -> EnqueueResult:
        """Add work for one asset. The same identity again is a no-op (or a move, when only
        the paths changed); a new identity cancels the asset's waiting/failed jobs, and an
        earlier identity coming back makes its job current again (`_current_again`)."""
        return self._retrying(lambda conn: self._enqueue(conn, spec))

    def _enqueue(self, conn: Connection, spec: JobSpec) -> EnqueueResult:
        now = utcnow()
        existing = conn.execute(
            select(
                jobs.c.id, jobs.c.asset_key, jobs.c.payload, jobs.c.state, jobs.c.superseded_by,
                jobs.c.finished_at,
            ).where(jobs.c.identity == spec.identity)
        ).first()
        if existing is not None:
            job_id = existing.id
            moved = existing.asset_key != spec.asset_key or _paths(existing.payload) != _paths(
                spec.payload
            )
            if moved:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(asset_key=spec.asset_key, payload=spec.payload, updated_at=now)
                )
                state = JobState(existing.state)
                self._event(
                    conn, job_id, state, state,
                    f"moved: {existing.asset_key} -> {spec.asset_key}", None, now,
                )
            superseded: list[int] = []
            if existing.superseded_by is not None:
                superseded = self._current_again(conn, spec.asset_key, existing, now)
            elif existing.asset_key != spec.asset_key:
                # Moved onto a key that had jobs of its own (a file moved over another): their
                # content is no longer there, so this job supersedes them.
                superseded = self._supersede(conn, spec.asset_key, job_id, now)
            return EnqueueResult(job_id, False, superseded, moved)

        job_id = conn.execute(
            insert(jobs)
            .values(
                identity=spec.identity,
                asset_key=spec.asset_key,
                state=JobState.PENDING.value,
                priority=spec.priority,
                attempts=0,
                max_attempts=spec.max_attempts,
                not_before=spec.not_before,
                created_at=now,
                updated_at=now,
                payload=spec.payload,
                restorer=spec.restorer,
                weights_digest=spec.weights_digest,
                params=spec.params,
                force=False,
            )
            .returning(jobs.c.id)
        ).scalar_one()
        self._event(conn, job_id, None, JobState.PENDING, "enqueued", None, now)
        superseded = self._supersede(conn, spec.asset_key, job_id, now)
        return EnqueueResult(job_id, True, superseded, False)

    def _current_again(
        self, conn: Connection, asset_key: str, existing: Any, now: datetime
    ) -> list[int]:
        """The inputs went back to the version of `existing`, a superseded job: it is current
        again, and the newer jobs are superseded in its favour. A cancelled job is queued
        again, and so is a succeeded one whose output a newer job has since replaced; a running
        job carries on. Returns the ids of the jobs cancelled."""
        job_id = existing.id
        cancelled = self._supersede(conn, asset_key, job_id, now)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(superseded_by=None))
        state = JobState(existing.state)
        if state == JobState.CANCELLED:
            self._requeue(conn, job_id, state, "inputs match this job again")
        elif state == JobState.SUCCEEDED:
            replaced = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.asset_key == asset_key,
                    jobs.c.id != job_id,
                    jobs.c.state == JobState.SUCCEEDED.value,
                    jobs.c.finished_at > existing.finished_at,
                ).limit(1)
            ).first()
            if replaced is not None:
                self._requeue(
                    conn, job_id, state,
                    f"inputs match this job again; job {replaced.id} replaced its output",
                )
        return cancelled

    def _supersede(self, conn: Connection, asset_key: str, new_id: int, now: datetime) -> list[int]:
        """Cancel the asset's other waiting or failed jobs in favour of `new_id`; running and
        finished jobs are only marked (a worker may be writing that output right now)."""
        rows = conn.execute(
            select(jobs.c.id, jobs.c.state).where(
                jobs.c.asset_key == asset_key, jobs.c.id != new_id, jobs.c.superseded_by.is_(None)
            )
        ).all()
        cancelled = []
        for row in rows:
            if row.state in (JobState.PENDING, JobState.DEFERRED, JobState.FAILED):
                if self._transition(
                    conn, row.id, row.state, JobState.CANCELLED, f"superseded by job {new_id}",
                    now=now, superseded_by=new_id, finished_at=now,
                    lease_owner=None, lease_expires_at=None,
                ):
                    cancelled.append(row.id)
            else:
                conn.execute(update(jobs).where(jobs.c.id == row.id).values(superseded_by=new_id))
        return cancelled

    # ---- claim, heartbeat, finish -----------------------------------------------------

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
        candidate = conn.execute(_SELECT_CANDIDATE, {"now": now}).first()
        if candidate is None and not checked and self._requeue_expired(conn, now):
            candidate = conn.execute(_SELECT_CANDIDATE, {"now": now}).first()
        if candidate is None:
            return None
        row = self._transition(
            conn, candidate.id, candidate.state, JobState.RUNNING, "claimed", worker_id, now=now,
            attempts_delta=1,
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
        return _job(row)

    def heartbeat(
        self,
        job_id: int,
        worker_id: str,
        lease_seconds: float,
        progress: float | None = None,
        stage: str | None = None,
    ) -> bool:
        """Extend the lease (and record progress). False when the lease is no longer ours:
        the worker must stop and drop its result."""
        now = utcnow()
        params: dict[str, Any] = {
            "jid": job_id,
            "owner": worker_id,
            "v_lease_expires_at": now + timedelta(seconds=lease_seconds),
            "v_heartbeat_at": now,
            "v_progress": None if progress is None else float(progress),
            "v_stage": stage,
        }
        stmt = _heartbeat_statement(progress is not None, stage is not None)
        with self._write() as conn:
            return conn.execute(stmt, params).rowcount == 1

    def _finish_running(
        self, job_id: int, worker_id: str, new: JobState, reason: str | None, **values: Any
    ) -> None:
        """Move a job this worker holds out of running; `LeaseLost` if it no longer holds it.
        A job that would go back to the queue is cancelled instead if newer inputs superseded
        it while it ran (see `_superseded_instead`)."""

        def run(conn: Connection) -> None:
            to, why, vals = new, reason, values
            if new in CLAIMABLE_STATES:
                newer = conn.execute(
                    select(jobs.c.superseded_by).where(jobs.c.id == job_id)
                ).scalar()
                to, why, vals = _superseded_instead(newer, new, reason, values)
            if not self._transition(
                conn, job_id, JobState.RUNNING, to, why, worker_id, owner=worker_id, **vals
            ):
                state = self._state_of(conn, job_id)
                raise LeaseLost(f"job {job_id} is {state.value}, no longer held by {worker_id}")

        self._retrying(run)

    def _lease_lost(self, job_id: int, worker_id: str, what: str, exc: LeaseLost) -> None:
        log.warning("lease lost", job_id=job_id, worker=worker_id, error=str(exc), action=what)

    def succeed(
        self,
        job_id: int,
        worker_id: str,
        output_path: str | None,
        output_signature: Mapping[str, Any] | None,
        provenance: Mapping[str, Any] | None,
    ) -> None:
        """Record the written output. Raises `LeaseLost` if the job is no longer ours."""
        now = utcnow()
        self._finish_running(
            job_id, worker_id, JobState.SUCCEEDED, "succeeded",
            output_path=output_path,
            output_signature=dict(output_signature) if output_signature is not None else None,
            provenance=dict(provenance) if provenance is not None else None,
            finished_at=now, lease_owner=None, lease_expires_at=None,
            progress=1.0, last_error=None, force=False,
        )

    def fail(
        self,
        job_id: int,
        worker_id: str,
        error: str,
        *,
        retryable: bool = True,
        backoff_seconds: float | None = None,
    ) -> JobState | None:
        """Record a failed attempt: back to pending after a backoff while attempts remain
        (exponential from 60 s unless `backoff_seconds`), else failed. Returns the new state,
        or None (nothing changed) when the worker no longer holds the job — so a worker's
        error handler never fails itself because the lease was lost meanwhile."""

        def run(conn: Connection) -> JobState | None:
            row = conn.execute(
                select(
                    jobs.c.attempts, jobs.c.max_attempts, jobs.c.state, jobs.c.lease_owner,
                    jobs.c.superseded_by,
                ).where(jobs.c.id == job_id)
            ).first()
            if row is None:
                raise JobNotFound(f"job {job_id} does not exist")
            if row.state != JobState.RUNNING or row.lease_owner != worker_id:
                lost = LeaseLost(f"job {job_id} is {row.state}, no longer held by {worker_id}")
                self._lease_lost(job_id, worker_id, "fail", lost)
                return None
            now = utcnow()
            common = {"last_error": error, "lease_owner": None, "lease_expires_at": None}
            if retryable and row.attempts < row.max_attempts:
                delay = backoff_seconds
                if delay is None:
                    delay = min(BACKOFF_BASE_SECONDS * 2 ** (row.attempts - 1), BACKOFF_MAX_SECONDS)
                to, why, values = _superseded_instead(
                    row.superseded_by, JobState.PENDING,
                    f"attempt {row.attempts}/{row.max_attempts} failed: {error}",
                    {"not_before": now + timedelta(seconds=delay), **common}, now,
                )
                self._transition(
                    conn, job_id, JobState.RUNNING, to, why, worker_id, now=now, **values
                )
                return to
            why = "not retryable" if not retryable else f"{row.attempts} attempts"
            self._transition(
                conn, job_id, JobState.RUNNING, JobState.FAILED, f"failed ({why}): {error}",
                worker_id, now=now, finished_at=now, **common,
            )
            return JobState.FAILED

        return self._retrying(run)

    def defer(self, job_id: int, worker_id: str, reason: str, delay_seconds: float) -> bool:
        """Postpone without burning the attempt (no GPU, out of memory, outside a window).
        False (and nothing changed) when the worker no longer holds the job."""
        now = utcnow()
        try:
            self._finish_running(
                job_id, worker_id, JobState.DEFERRED, reason,
                not_before=now + timedelta(seconds=delay_seconds),
                attempts_delta=-1, lease_owner=None, lease_expires_at=None,
                last_error=reason,
            )
        except LeaseLost as exc:
            self._lease_lost(job_id, worker_id, "defer", exc)
            return False
        return True

    def release(self, job_id: int, worker_id: str, reason: str) -> bool:
        """Hand the job back untouched (SIGTERM, pause): pending again, attempt not counted.
        False (and nothing changed) when the worker no longer holds the job."""
        try:
            self._finish_running(
                job_id, worker_id, JobState.PENDING, reason,
                attempts_delta=-1, lease_owner=None, lease_expires_at=None,
            )
        except LeaseLost as exc:
            self._lease_lost(job_id, worker_id, "release", exc)
            return False
        return True

    def skip(self, job_id: int, reason: str) -> bool:
        """Nothing to do for this job (e.g. the asset turned out not restorable)."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if state not in ACTIVE_STATES:
                return False
            now = utcnow()
            return self._transition(
                conn, job_id, state, JobState.SKIPPED, reason, now=now,
                finished_at=now, lease_owner=None, lease_expires_at=None,
            )

        return self._retrying(run)

    def requeue_expired(self) -> int:
        """Return running jobs whose lease ran out to the queue (or fail them when their
        attempts are used up). Returns how many were handled."""
        return self._retrying(lambda conn: self._requeue_expired(conn, utcnow()))

    def _requeue_expired(self, conn: Connection, now: datetime) -> int:
        self._expiry_checked = time.monotonic()
        rows = conn.execute(_SELECT_EXPIRED, {"now": now}).all()
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

    # ---- people's commands -----------------------------------------------------------

    def _requeue(
        self, conn: Connection, job_id: int, state: JobState, reason: str, force: bool = False
    ) -> bool:
        return self._transition(
            conn, job_id, state, JobState.PENDING, reason,
            attempts=0, not_before=None, finished_at=None, lease_owner=None,
            lease_expires_at=None, force=force, progress=None, stage=None,
        )

    def retry(self, job_id: int) -> bool:
        """Re-queue a failed, cancelled or skipped job with fresh attempts. Not one superseded
        by newer inputs: its inputs are gone, and the newer job is the one to retry."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if state not in (JobState.FAILED, JobState.CANCELLED, JobState.SKIPPED):
                return False
            newer = conn.execute(
                select(jobs.c.superseded_by).where(jobs.c.id == job_id)
            ).scalar()
            if newer is not None:
                return False
            return self._requeue(conn, job_id, state, "retry requested")

        return self._retrying(run)

    def retry_failed(self) -> int:
        """Re-queue every failed job that newer inputs have not superseded."""

        def run(conn: Connection) -> int:
            ids = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.state == JobState.FAILED.value, jobs.c.superseded_by.is_(None)
                )
            ).scalars()
            return sum(
                self._requeue(conn, i, JobState.FAILED, "retry of all failed jobs") for i in ids
            )

        return self._retrying(run)

    def cancel(self, job_id: int, reason: str = "cancelled by request") -> bool:
        """Cancel a waiting, running or failed job (a running job's worker sees its
        heartbeat refused and stops)."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if state not in (*ACTIVE_STATES, JobState.FAILED, JobState.SKIPPED):
                return False
            now = utcnow()
            return self._transition(
                conn, job_id, state, JobState.CANCELLED, reason, now=now,
                finished_at=now, lease_owner=None, lease_expires_at=None,
            )

        return self._retrying(run)

    def reprocess(
        self,
        since: datetime,
        until: datetime | None = None,
        states: Iterable[JobState | str] = (
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.SKIPPED,
            JobState.CANCELLED,
        ),
        force: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Re-queue finished jobs whose `finished_at` lies in [since, until). Jobs superseded
        by newer inputs, and assets that already have waiting or running work, are left alone.
        `force` tells the worker to redo the work even where a matching output exists.
        Returns how many jobs were (or, with `dry_run`, would be) re-queued."""
        wanted = [JobState(s).value for s in states]
        if any(JobState(s) not in FINISHED_STATES for s in wanted):
            raise ValueError("reprocess only re-queues finished jobs")
        cond = [
            jobs.c.state.in_(wanted),
            jobs.c.finished_at >= since,
            jobs.c.superseded_by.is_(None),
        ]
        if until is not None:
            cond.append(jobs.c.finished_at < until)

        def run(conn: Connection) -> int:
            busy = set(
                conn.execute(
                    select(jobs.c.asset_key).where(
                        jobs.c.state.in_([s.value for s in ACTIVE_STATES])
                    )
                ).scalars()
            )
            rows = conn.execute(select(jobs.c.id, jobs.c.state, jobs.c.asset_key).where(*cond))
            count = 0
            for row in rows.all():
                if row.asset_key in busy:
                    continue
                busy.add(row.asset_key)
                if not dry_run:
                    reason = "reprocess" + (" (force)" if force else "")
                    if not self._requeue(conn, row.id, row.state, reason, force=force):
                        continue
                count += 1
            return count

        if dry_run:
            with self._read() as conn:
                return run(conn)
        return self._retrying(run)

    # ---- reading -----------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobState}
        with self._read() as conn:
            for state, n in conn.execute(
                select(jobs.c.state, func.count()).group_by(jobs.c.state)
            ):
                out[state] = int(n)
        return out

    def recent_failures(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.state == JobState.FAILED.value)
                .order_by(jobs.c.finished_at.desc(), jobs.c.id.desc())
                .limit(limit)
            ).all()
        out = []
        for row in rows:
            job = _job(row)
            out.append(
                {
                    "job_id": job.id,
                    "asset": job.asset_key,
                    "path": job.path,
                    "error": job.last_error,
                    "attempts": job.attempts,
                    "finished_at": job.finished_at.isoformat() if job.finished_at else None,
                }
            )
        return out

    def list_jobs(
        self, state: JobState | str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit).offset(offset)
        if state is not None:
            query = query.where(jobs.c.state == JobState(state).value)
        with self._read() as conn:
            return [_job(r) for r in conn.execute(query).all()]

    def get_job(self, job_id: int) -> Job | None:
        with self._read() as conn:
            row = conn.execute(_SELECT_JOB, {"jid": job_id}).first()
        return _job(row) if row is not None else None

    def jobs_for_asset(self, asset_key: str) -> list[Job]:
        with self._read() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.asset_key == asset_key).order_by(jobs.c.id)
            ).all()
        return [_job(r) for r in rows]

    def events(self, job_id: int) -> list[JobEvent]:
        with self._read() as conn:
            rows = conn.execute(
                select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            ).all()
        return [
            JobEvent(
                r.id, r.job_id, r.at,
                JobState(r.from_state) if r.from_state else None,
                JobState(r.to_state), r.reason, r.worker,
            )
            for r in rows
        ]

    # ---- workers -----------------------------------------------------------------------

    def upsert_worker(
        self,
        worker_id: str,
        *,
        state: str,
        hostname: str | None = None,
        pid: int | None = None,
        job_id: int | None = None,
        progress: float | None = None,
        stage: str | None = None,
        window: str | None = None,
        restorer: str | None = None,
        device: str | None = None,
    ) -> None:
        """Record what a worker is doing now (shown by `lmd status`)."""
        now = utcnow()
        values = {
            "state": state, "job_id": job_id, "progress": progress, "stage": stage,
            "window": window, "restorer": restorer, "device": device, "heartbeat_at": now,
        }
        if hostname is not None:
            values["hostname"] = hostname
        if pid is not None:
            values["pid"] = pid

        def run(conn: Connection) -> None:
            done = conn.execute(update(workers).where(workers.c.id == worker_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(workers).values(id=worker_id, started_at=now, **values))

        self._retrying(run)

    def get_workers(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.id)).all()
        return [_plain_row(r) for r in rows]

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))

    # ---- scans ---------------------------------------------------------------------------

    def start_scan(self, root: str, trigger: str) -> int:
        with self._write() as conn:
            return conn.execute(
                insert(scans)
                .values(
                    root=str(root), trigger=trigger, started_at=utcnow(),
                    files_seen=0, assets_found=0, enqueued=0, unreadable=0,
                )
                .returning(scans.c.id)
            ).scalar_one()

    def finish_scan(
        self,
        scan_id: int,
        *,
        files_seen: int = 0,
        assets_found: int = 0,
        enqueued: int = 0,
        unreadable: int = 0,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(scans)
                .where(scans.c.id == scan_id)
                .values(
                    finished_at=utcnow(), files_seen=files_seen, assets_found=assets_found,
                    enqueued=enqueued, unreadable=unreadable,
                )
            )

    def last_scan(self) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                select(scans).order_by(scans.c.started_at.desc(), scans.c.id.desc()).limit(1)
            ).first()
        return _plain_row(row) if row is not None else None

    # ---- asset cache and library problems ----------------------------------------------

    def lookup_asset(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The cached discovery result for `key`, if its files still have `fingerprint`."""
        with self._read() as conn:
            row = conn.execute(
                select(assets.c.data).where(
                    assets.c.key == key, assets.c.fingerprint == fingerprint
                )
            ).first()
        return dict(row.data) if row is not None else None

    def remember_asset(
        self,
        key: str,
        fingerprint: str,
        data: Mapping[str, Any],
        reason: str | None,
        restorable: bool,
        scan_id: int | None = None,
    ) -> None:
        values = {
            "fingerprint": fingerprint, "data": dict(data), "reason": reason,
            "restorable": bool(restorable), "seen_at": utcnow(), "scan_id": scan_id,
        }

        def run(conn: Connection) -> None:
            done = conn.execute(update(assets).where(assets.c.key == key).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(assets).values(key=key, **values))

        self._retrying(run)

    def forget_asset(self, key: str) -> None:
        with self._write() as conn:
            conn.execute(assets.delete().where(assets.c.key == key))

    def library_problems(self, limit: int = 50) -> list[dict[str, Any]]:
        """Assets that discovery could not read or cannot restore, with the reason."""
        with self._read() as conn:
            rows = conn.execute(
                select(assets.c.key, assets.c.reason, assets.c.restorable, assets.c.seen_at)
                .where(assets.c.reason.is_not(None))
                .order_by(assets.c.seen_at.desc(), assets.c.key)
                .limit(limit)
            ).all()
        return [_plain_row(r) for r in rows]

    # ---- control flags -----------------------------------------------------------------

    def get_control(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(control.c.value).where(control.c.key == key)).scalar()

    def set_control(self, key: str, value: str | None) -> None:
        now = utcnow()

        def run(conn: Connection) -> None:
            done = conn.execute(
                update(control).where(control.c.key == key).values(value=value, updated_at=now)
            )
            if done.rowcount == 0:
                conn.execute(insert(control).values(key=key, value=value, updated_at=now))

        self._retrying(run)

    def is_paused(self) -> bool:
        return self.get_control(PAUSED_KEY) == "1"

    def set_paused(self, paused: bool) -> None:
        self.set_control(PAUSED_KEY, "1" if paused else "0")

    # ---- replace-mode backups ----------------------------------------------------------

    def record_backup(
        self,
        job_id: int | None,
        target_path: str,
        backup_path: str,
        original_signature: Mapping[str, Any] | None,
        restored_signature: Mapping[str, Any] | None,
    ) -> int:
        with self._write() as conn:
            return conn.execute(
                insert(backups)
                .values(
                    job_id=job_id, target_path=str(target_path), backup_path=str(backup_path),
                    original_signature=dict(original_signature) if original_signature else None,
                    restored_signature=dict(restored_signature) if restored_signature else None,
                    created_at=utcnow(),
                )
                .returning(backups.c.id)
            ).scalar_one()

    def backups_for(
        self,
        target_path: str | None = None,
        *,
        job_id: int | None = None,
        include_reverted: bool = False,
    ) -> list[dict[str, Any]]:
        """Backups of one target (or one job, or all), newest first."""
        query = select(backups).order_by(backups.c.created_at.desc(), backups.c.id.desc())
        if target_path is not None:
            query = query.where(backups.c.target_path == str(target_path))
        if job_id is not None:
            query = query.where(backups.c.job_id == job_id)
        if not include_reverted:
            query = query.where(backups.c.reverted_at.is_(None))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def mark_reverted(self, backup_id: int) -> bool:
        with self._write() as conn:
            done = conn.execute(
                update(backups)
                .where(backups.c.id == backup_id, backups.c.reverted_at.is_(None))
                .values(reverted_at=utcnow())
            )
            return done.rowcount == 1
