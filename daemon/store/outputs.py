"""The index of lmd's own outputs: every file lmd wrote, by content, with the job that wrote it.

A row is written in the transaction that records the job's success (`LeaseOps.succeed`), so the
index and the job rows never disagree. The scanner asks it before enqueueing anything (`lmd`'s
output is never an input, wherever it moved: a replaced still under a renamed folder is
"restored, moved", not new work), and revert asks it to find the backup record of a replaced
still by its content and job rather than by the path it had when it was written.

A replace record (the JSON beside the backup, the one source of truth for revert) names the
target it replaced. When the still moves, the scanner updates `path` here and the record
follows: `records_to_follow` lists the rows whose record still names another target, for the
worker and `lmd revert` (which may write files; the scanner may not) to rewrite, and
`record_followed` notes it done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import utcnow
from daemon.store.models import jobs, outputs
from daemon.store.states import JobState

#: how an output was written: `daemon.output.OutputPlan.kind`
OUTPUT_KINDS = frozenset({"replace", "sidecar-tree", "sidecar-beside"})


@dataclass(frozen=True, slots=True)
class RecordedOutput:
    """One row of the index: an output lmd wrote and where lmd last knew it to be."""

    id: int
    job_id: int
    content_hash: str
    size: int
    kind: str
    path: str
    record: str | None
    record_target: str | None
    written_at: datetime
    reverted_at: datetime | None

    @property
    def record_stale(self) -> bool:
        """The record beside the backup still names the target's old path."""
        return self.record is not None and self.record_target != self.path


def _output(row: Any) -> RecordedOutput:
    return RecordedOutput(
        row.id, row.job_id, row.content_hash, int(row.size), row.kind, row.path, row.record,
        row.record_target, row.written_at, row.reverted_at,
    )


class OutputOps(StoreBase):
    def _record_output(
        self,
        conn: Connection,
        job_id: int,
        path: str,
        signature: Mapping[str, Any],
        kind: str,
        record: str | None,
        now: datetime,
    ) -> None:
        """Add the output a job just wrote, in the caller's transaction (the one recording the
        job's success, or the review decision that publishes it)."""
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output kind {kind!r}")
        conn.execute(
            insert(outputs).values(
                job_id=job_id, content_hash=str(signature["content_hash"]),
                size=int(signature.get("size") or 0), kind=kind, path=str(path),
                record=record, record_target=str(path) if record is not None else None,
                written_at=now,
            )
        )

    def find_outputs(self, hashes: Iterable[str]) -> dict[str, RecordedOutput]:
        """The newest output with each of these content digests (digests that are not lmd's
        output are absent). Exact digests: every output digest is named and whole-file."""
        wanted = sorted({h for h in hashes if h})
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                select(outputs).where(outputs.c.content_hash.in_(wanted)).order_by(outputs.c.id)
            ).all()
        return {row.content_hash: _output(row) for row in rows}

    def outputs_of_job(self, job_id: int) -> list[RecordedOutput]:
        """Every output `job_id` wrote, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(outputs).where(outputs.c.job_id == job_id).order_by(outputs.c.id)
            ).all()
        return [_output(row) for row in rows]

    def outputs_with_record(self, record: str) -> list[RecordedOutput]:
        """Every output whose backup record is `record` (a path), oldest first: the outputs
        written over one original, by one job or by several."""
        with self._read() as conn:
            rows = conn.execute(
                select(outputs).where(outputs.c.record == str(record)).order_by(outputs.c.id)
            ).all()
        return [_output(row) for row in rows]

    def outputs_at(self, path: str) -> list[RecordedOutput]:
        """Outputs lmd last knew to be at `path`, newest first (not reverted)."""
        with self._read() as conn:
            rows = conn.execute(
                select(outputs)
                .where(outputs.c.path == str(path), outputs.c.reverted_at.is_(None))
                .order_by(outputs.c.id.desc())
            ).all()
        return [_output(row) for row in rows]

    def output_moved(
        self, output_id: int, new_path: str, asset_key: str, payload: Mapping[str, Any]
    ) -> bool:
        """A replaced still found under a new path ("restored, moved"): the index, and its job's
        key, paths and recorded output follow it, with an event saying so. The job keeps its
        identity and state. Every other output lmd knew at the old path moves along (earlier
        outputs over the same still, whose records must follow it too), and so does the output
        path of every job that recorded one there. False when the output row is gone."""

        def run(conn: Connection) -> bool:
            row = conn.execute(select(outputs).where(outputs.c.id == output_id)).first()
            if row is None:
                return False
            now = utcnow()
            conn.execute(update(outputs).where(outputs.c.id == output_id).values(path=new_path))
            self._still_moved(conn, row.path, new_path, now)
            job = conn.execute(
                select(jobs.c.state, jobs.c.asset_key, jobs.c.output_path)
                .where(jobs.c.id == row.job_id)
            ).first()
            if job is None:  # pragma: no cover - foreign key
                return False
            values: dict[str, Any] = {
                "asset_key": asset_key, "payload": dict(payload), "updated_at": now,
            }
            conn.execute(update(jobs).where(jobs.c.id == row.job_id).values(**values))
            state = JobState(job.state)
            self._event(
                conn, row.job_id, state, state,
                f"restored, moved: {row.path} -> {new_path}", None, now,
            )
            return True

        return self._retrying(run)

    @staticmethod
    def _still_moved(conn: Connection, old: str, new: str, now: datetime) -> None:
        """Everything lmd knows at the still's old path follows it, in the caller's
        transaction: the outputs it wrote there (so their backup records follow too) and the
        output path of every job that recorded one there."""
        conn.execute(update(outputs).where(outputs.c.path == old).values(path=new))
        conn.execute(
            update(jobs).where(jobs.c.output_path == old).values(output_path=new, updated_at=now)
        )

    def records_to_follow(self) -> list[RecordedOutput]:
        """Outputs whose backup record still names a target the still has moved away from."""
        with self._read() as conn:
            rows = conn.execute(
                select(outputs).where(
                    outputs.c.record.is_not(None),
                    outputs.c.reverted_at.is_(None),
                    outputs.c.record_target != outputs.c.path,
                ).order_by(outputs.c.id)
            ).all()
        return [_output(row) for row in rows]

    def record_followed(self, output_id: int, target: str) -> None:
        """The record of `output_id` now names `target`."""
        with self._write() as conn:
            conn.execute(
                update(outputs).where(outputs.c.id == output_id).values(record_target=target)
            )

    def output_reverted(self, output_id: int) -> None:
        """The original is back in place of this output (`lmd revert`): the row stays, as proof
        that this content is lmd's, and its job no longer claims an output that is gone."""

        def run(conn: Connection) -> None:
            row = conn.execute(select(outputs).where(outputs.c.id == output_id)).first()
            if row is None or row.reverted_at is not None:
                return
            now = utcnow()
            conn.execute(update(outputs).where(outputs.c.id == output_id).values(reverted_at=now))
            job = conn.execute(
                select(jobs.c.state, jobs.c.output_path, jobs.c.output_signature)
                .where(jobs.c.id == row.job_id)
            ).first()
            signature = (job.output_signature or {}) if job is not None else {}
            if job is None or signature.get("content_hash") != row.content_hash:
                return
            conn.execute(
                update(jobs).where(jobs.c.id == row.job_id)
                .values(output_path=None, output_signature=None, updated_at=now)
            )
            state = JobState(job.state)
            self._event(
                conn, row.job_id, state, state, f"reverted: the original is back at {row.path}",
                None, now,
            )

        self._retrying(run)
