"""People's commands: retry, cancel and reprocess jobs.

Which command may act on a job in which state is decided by `COMMAND_STATES` in `states.py`
(beside the transition table), so the CLI and the store give the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, select

from daemon.store.base import StoreBase
from daemon.store.jobs import utcnow
from daemon.store.models import jobs
from daemon.store.states import (
    ACTIVE_STATES,
    COMMAND_STATES,
    Command,
    JobState,
    command_allows,
    describe_states,
)


class CommandOps(StoreBase):
    def retry(self, job_id: int) -> bool:
        """Re-queue a job in a state `Command.RETRY` allows (failed, cancelled, skipped) with
        fresh attempts. Not one superseded by newer inputs: its inputs are gone, and the newer
        job is the one to retry. False when the job may not be retried."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if not command_allows(Command.RETRY, state):
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
        """Cancel a job in a state `Command.CANCEL` allows (waiting, running, failed or
        skipped); a running job's worker sees its heartbeat refused and stops. False when the
        job may not be cancelled."""

        def run(conn: Connection) -> bool:
            state = self._state_of(conn, job_id)
            if not command_allows(Command.CANCEL, state):
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
        states: Iterable[JobState | str] = COMMAND_STATES[Command.REPROCESS],
        force: bool = False,
        dry_run: bool = False,
    ) -> int:
        """Re-queue finished jobs whose `finished_at` lies in [since, until). Jobs superseded
        by newer inputs, and assets that already have waiting or running work of the same kind,
        are left alone.
        `force` tells the worker to redo the work even where a matching output exists.
        Returns how many jobs were (or, with `dry_run`, would be) re-queued."""
        wanted = sorted(JobState(s).value for s in states)
        if not all(command_allows(Command.REPROCESS, s) for s in wanted):
            allowed = describe_states(COMMAND_STATES[Command.REPROCESS])
            raise ValueError(f"reprocess only re-queues {allowed} jobs")
        cond = [
            jobs.c.state.in_(wanted),
            jobs.c.finished_at >= since,
            jobs.c.superseded_by.is_(None),
        ]
        if until is not None:
            cond.append(jobs.c.finished_at < until)

        def run(conn: Connection) -> int:
            # per asset and kind: an asset's still and video jobs are separate work
            busy = {
                (row.asset_key, row.kind)
                for row in conn.execute(
                    select(jobs.c.asset_key, jobs.c.kind).where(
                        jobs.c.state.in_([s.value for s in ACTIVE_STATES])
                    )
                )
            }
            rows = conn.execute(
                select(jobs.c.id, jobs.c.state, jobs.c.asset_key, jobs.c.kind).where(*cond)
            )
            count = 0
            for row in rows.all():
                if (row.asset_key, row.kind) in busy:
                    continue
                busy.add((row.asset_key, row.kind))
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
