"""Reading jobs: counts per state, lists, one job, an asset's jobs, a job's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from daemon.store.base import StoreBase
from daemon.store.jobs import Job, JobEvent, event_from_row, job_from_row
from daemon.store.models import job_events, jobs
from daemon.store.statements import SELECT_JOB
from daemon.store.states import JobState


class QueryOps(StoreBase):
    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs per state: of one kind ('still', 'video'), or of every kind (None)."""
        out = {s.value: 0 for s in JobState}
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        with self._read() as conn:
            for state, n in conn.execute(query):
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
            job = job_from_row(row)
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
            return [job_from_row(r) for r in conn.execute(query).all()]

    def get_job(self, job_id: int) -> Job | None:
        with self._read() as conn:
            row = conn.execute(SELECT_JOB, {"jid": job_id}).first()
        return job_from_row(row) if row is not None else None

    def jobs_for_asset(self, asset_key: str) -> list[Job]:
        with self._read() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.asset_key == asset_key).order_by(jobs.c.id)
            ).all()
        return [job_from_row(r) for r in rows]

    def targets_holding(self, digest: str) -> list[str]:
        """The target paths (where the jobs last saw them) of the jobs whose target input has
        this content digest, newest job first: where a still lmd knows by its content is now
        (a record of its original can follow it there)."""
        content = jobs.c.payload["signatures"]["target"]["content_hash"].as_string()
        with self._read() as conn:
            rows = conn.execute(
                select(jobs.c.payload["target"].as_string())
                .where(content == digest).order_by(jobs.c.id.desc())
            ).scalars().all()
        return [path for path in dict.fromkeys(rows) if path]

    def events(self, job_id: int) -> list[JobEvent]:
        with self._read() as conn:
            rows = conn.execute(
                select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
            ).all()
        return [event_from_row(r) for r in rows]
