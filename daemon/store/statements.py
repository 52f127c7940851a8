"""Prebuilt statements for the hot path (claim, heartbeat, state changes).

Executing a statement object built once lets SQLAlchemy reuse its cache key and compiled form,
which is most of the cost of a short transaction on SQLite. Statements that vary only in which
columns they set are built on first use per shape and kept in `_CACHE`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update

from daemon.store.models import job_events, jobs
from daemon.store.states import CLAIMABLE_STATES, JobState

INSERT_EVENT = insert(job_events)
SELECT_JOB = select(jobs).where(jobs.c.id == bindparam("jid"))
#: The next due job: claimable, due, highest priority then oldest.
SELECT_CANDIDATE = (
    select(jobs.c.id, jobs.c.state)
    .where(
        or_(*(jobs.c.state == s.value for s in sorted(CLAIMABLE_STATES))),
        or_(jobs.c.not_before.is_(None), jobs.c.not_before <= bindparam("now")),
    )
    .order_by(jobs.c.priority.desc(), jobs.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)  # PostgreSQL: concurrent claimers skip locked rows
)
#: Running jobs whose lease ran out.
SELECT_EXPIRED = (
    select(
        jobs.c.id, jobs.c.lease_owner, jobs.c.attempts, jobs.c.max_attempts, jobs.c.superseded_by
    )
    .where(jobs.c.state == JobState.RUNNING.value, jobs.c.lease_expires_at < bindparam("now"))
    .order_by(jobs.c.id)  # concurrent claimers lock expired rows in one order: no deadlock
)
_CACHE: dict[tuple[Any, ...], Any] = {}


def transition_statement(
    keys: tuple[str, ...],
    guarded: bool,
    attempts_delta: int,
    returning: bool,
    fenced: bool = False,
    new_lease: bool = False,
) -> Any:
    """UPDATE jobs SET state, updated_at, <keys> [, attempts = attempts + :delta]
    [, lease_generation = lease_generation + 1] WHERE id = :id AND state = :from
    [AND lease_owner = :owner] [AND lease_generation = :gen] [RETURNING *].

    `new_lease` (a claim) bumps the fencing token; `fenced` (a worker finishing its job) only
    matches the lease generation the worker was given."""
    cache_key = (
        "transition", keys, guarded, attempts_delta != 0, returning, fenced, new_lease
    )
    stmt = _CACHE.get(cache_key)
    if stmt is None:
        cond = [jobs.c.id == bindparam("_id"), jobs.c.state == bindparam("_from")]
        if guarded:
            cond.append(jobs.c.lease_owner == bindparam("_owner"))
        if fenced:
            cond.append(jobs.c.lease_generation == bindparam("_gen"))
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in keys}
        values.update(state=bindparam("_to"), updated_at=bindparam("_now"))
        if attempts_delta:
            values["attempts"] = jobs.c.attempts + bindparam("_delta")
        if new_lease:
            values["lease_generation"] = jobs.c.lease_generation + 1
        stmt = update(jobs).where(*cond).values(values)
        if returning:
            stmt = stmt.returning(*jobs.c)
        _CACHE[cache_key] = stmt
    return stmt


def heartbeat_statement(
    with_progress: bool, with_stage: bool, fenced: bool = False, unexpired: bool = False
) -> Any:
    """UPDATE jobs SET lease_expires_at, heartbeat_at [, progress] [, stage]
    WHERE id = :jid AND state = 'running' AND lease_owner = :owner
    [AND lease_generation = :gen] [AND lease_expires_at > :now].

    `unexpired` is the fence's form: a lease that ran out is not held any more, even before
    another worker claims the job."""
    cache_key = ("heartbeat", with_progress, with_stage, fenced, unexpired)
    stmt = _CACHE.get(cache_key)
    if stmt is None:
        values = {
            "lease_expires_at": bindparam("v_lease_expires_at"),
            "heartbeat_at": bindparam("v_heartbeat_at"),
        }
        if with_progress:
            values["progress"] = bindparam("v_progress")
        if with_stage:
            values["stage"] = bindparam("v_stage")
        cond = [
            jobs.c.id == bindparam("jid"),
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.lease_owner == bindparam("owner"),
        ]
        if fenced:
            cond.append(jobs.c.lease_generation == bindparam("gen"))
        if unexpired:
            cond.append(jobs.c.lease_expires_at > bindparam("now"))
        stmt = _CACHE[cache_key] = update(jobs).where(*cond).values(values)
    return stmt
