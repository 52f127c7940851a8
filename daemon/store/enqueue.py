"""Enqueueing: one job per identity, moves instead of new jobs, newer inputs supersede.

The scanner enqueues every restorable asset on every scan, so enqueueing must be idempotent:
the same identity again is a no-op, or a move when only the paths changed (a `beside` output
moves with its folder). A new identity for an asset cancels the asset's waiting or failed jobs
(their inputs are gone) and only marks running and finished ones; an earlier identity coming
back makes its job current again. All of this is per kind: an asset's video job never
supersedes its still job, nor the other way round.

Nothing stays stuck: the stored signatures follow what the scan saw (a touched file's new
mtime), and a job skipped because its inputs changed or moved between scan and work is queued
again by the scan that sees them consistent (moved, or touched, under the same identity).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any

from sqlalchemy import Connection, insert, select, update

from daemon.store.jobs import EnqueueResult, JobSpec, utcnow
from daemon.store.models import jobs
from daemon.store.outputs import OutputOps
from daemon.store.states import JobState

#: the asset paths inside a payload; a change here with the same identity is a move
PATH_FIELDS = ("reference", "video", "target", "sidecars")


def _paths(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: payload.get(k) for k in PATH_FIELDS}


def _moved_output(
    output_path: str | None, before: Mapping[str, Any], after: Mapping[str, Any]
) -> str | None:
    """Where an output written beside the asset (in the target's or the reference's folder) is
    after the asset moved: the same name in the asset's new folder. None for an output that
    does not live beside it (the tree) or a job without one."""
    if not output_path:
        return None
    folder = PurePath(output_path).parent
    for role in ("target", "reference"):
        old, new = before.get(role), after.get(role)
        if old and new and PurePath(old).parent == folder:
            return str(PurePath(new).parent / PurePath(output_path).name)
    return None


class EnqueueOps(OutputOps):
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
                jobs.c.finished_at, jobs.c.output_path, jobs.c.kind,
            ).where(jobs.c.identity == spec.identity)
        ).first()
        if existing is not None:
            job_id = existing.id
            moved = existing.asset_key != spec.asset_key or _paths(existing.payload) != _paths(
                spec.payload
            )
            touched = existing.payload.get("signatures") != spec.payload.get("signatures")
            state = JobState(existing.state)
            if moved or touched:
                values: dict[str, Any] = {
                    "asset_key": spec.asset_key, "payload": spec.payload, "updated_at": now,
                }
                output = _moved_output(existing.output_path, existing.payload, spec.payload)
                if moved and output is not None:
                    values["output_path"] = output
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
                # what a replace-mode output stands in for: the still, or a video job's MOV
                role = "target" if existing.kind == "still" else "video"
                old_target, new_target = existing.payload.get(role), spec.payload.get(role)
                if moved and old_target and new_target and old_target != new_target:
                    self._still_moved(conn, old_target, new_target, now)
                why = (
                    f"moved: {existing.asset_key} -> {spec.asset_key}" if moved
                    else "inputs touched: their signatures updated"
                )
                self._event(conn, job_id, state, state, why, None, now)
                if state == JobState.SKIPPED and existing.superseded_by is None:
                    self._requeue(conn, job_id, state, "inputs consistent again")
            superseded: list[int] = []
            if existing.superseded_by is not None:
                superseded = self._current_again(conn, spec.asset_key, existing, now)
            elif existing.asset_key != spec.asset_key:
                # Moved onto a key that had jobs of its own (a file moved over another): their
                # content is no longer there, so this job supersedes them.
                superseded = self._supersede(conn, spec.asset_key, job_id, now, existing.kind)
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
                kind=spec.kind,
                **(spec.output.to_columns() if spec.output is not None else {}),
            )
            .returning(jobs.c.id)
        ).scalar_one()
        self._event(conn, job_id, None, JobState.PENDING, "enqueued", None, now)
        superseded = self._supersede(conn, spec.asset_key, job_id, now, spec.kind)
        return EnqueueResult(job_id, True, superseded, False)

    def job_with_identity(self, identity: str) -> int | None:
        """The id of the job with this identity, if there is one."""
        with self._read() as conn:
            return conn.execute(select(jobs.c.id).where(jobs.c.identity == identity)).scalar()

    def _current_again(
        self, conn: Connection, asset_key: str, existing: Any, now: datetime
    ) -> list[int]:
        """The inputs went back to the version of `existing`, a superseded job: it is current
        again, and the newer jobs are superseded in its favour. A cancelled job is queued
        again, and so is a succeeded one whose output a newer job has since replaced; a running
        job carries on. Returns the ids of the jobs cancelled."""
        job_id = existing.id
        cancelled = self._supersede(conn, asset_key, job_id, now, existing.kind)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(superseded_by=None))
        state = JobState(existing.state)
        if state == JobState.CANCELLED:
            self._requeue(conn, job_id, state, "inputs match this job again")
        elif state == JobState.SUCCEEDED:
            replaced = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.asset_key == asset_key,
                    jobs.c.kind == existing.kind,
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

    def _supersede(
        self, conn: Connection, asset_key: str, new_id: int, now: datetime, kind: str
    ) -> list[int]:
        """Cancel the asset's other waiting or failed jobs of the same kind in favour of
        `new_id`; running and finished jobs are only marked (a worker may be writing that
        output right now). Jobs of the other kind restore another thing and are left alone."""
        rows = conn.execute(
            select(jobs.c.id, jobs.c.state).where(
                jobs.c.asset_key == asset_key, jobs.c.kind == kind, jobs.c.id != new_id,
                jobs.c.superseded_by.is_(None),
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
