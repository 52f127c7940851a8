"""`StoreBase`: the engine, its transactions, and the one place where a job's state changes.

Every part of `JobStore` (enqueue, leases, people's commands, bookkeeping) is a mixin over this
base, so they share one way to open a write transaction (`_write`: `BEGIN IMMEDIATE` on
SQLite), one retry policy for races (`_retrying`) and one state-change function
(`_transition`) that checks `TRANSITIONS` and writes a `job_events` row in the same
transaction.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import OperationalError as SAOperationalError

from daemon.store.db import IMMEDIATE
from daemon.store.errors import JobNotFound
from daemon.store.jobs import utcnow
from daemon.store.models import jobs
from daemon.store.statements import INSERT_EVENT, transition_statement
from daemon.store.states import JobState, check_transition

T = TypeVar("T")


class StoreBase:
    """The engine and its transactions. Thread-safe (one connection per call); open one store
    per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._expiry_checked = -math.inf  # monotonic time of the last look for expired leases

    def close(self) -> None:
        self.engine.dispose()

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
        generation: int | None = None,
        new_lease: bool = False,
        attempts_delta: int = 0,
        returning: bool = False,
        **values: Any,
    ) -> Any:
        """Move one job from `current` to `new` (checked against TRANSITIONS), set `values`
        (and add `attempts_delta` to attempts), and record the event — all in the caller's
        transaction. The UPDATE is guarded on the current state (and on the lease `owner` and
        its `generation` when given), so a racing change makes it return False instead of
        corrupting the row. `new_lease` (a claim) bumps the lease generation. Returns True on
        success, or the updated row when `returning`."""
        check_transition(current, new)
        now = now or utcnow()
        stmt = transition_statement(
            tuple(sorted(values)), owner is not None, attempts_delta, returning,
            fenced=generation is not None, new_lease=new_lease,
        )
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(
            _id=job_id, _from=JobState(current).value, _to=new.value, _now=now,
            _owner=owner, _delta=attempts_delta, _gen=generation,
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
            INSERT_EVENT,
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

    def _requeue(
        self, conn: Connection, job_id: int, state: JobState, reason: str, force: bool = False
    ) -> bool:
        """Back to pending with fresh attempts (retry, reprocess, inputs current again)."""
        return self._transition(
            conn, job_id, state, JobState.PENDING, reason,
            attempts=0, not_before=None, finished_at=None, lease_owner=None,
            lease_expires_at=None, force=force, progress=None, stage=None,
        )
