"""Review decisions: which finished restorations wait for a person, and what was decided.

Review is a state of its own beside the job's: a job whose restoration is done is `succeeded`,
and its `reviews` row says whether the restoration waits in staging (`awaiting`), was published
(`accepted`, by a person or directly when review is not required) or was turned down
(`rejected`). Keeping it beside the job state leaves the worker's transition table alone, and
the job identity (inputs, restorer, weights, parameters, output) already remembers a rejection:
the next scan enqueues the same identity, which is a no-op, until the inputs change or someone
runs `reprocess`.

A decision that writes files (accept publishes, a reject after direct publishing reverts) is
claimed first (`claim_review`: a token on the row, one claimant at a time), the write is fenced
on that claim (`review_claim_holds`, called immediately before the rename), and the result is
recorded only while the claim still holds, in the same transaction that changes the job's
recorded output and writes the job event (`finish_review`). So a decision made twice at once
(page and command line) writes once, and the job's history records every decision.

The table is defined here, beside the only code that reads it (the schema test compares it with
the migrations like every other table: it joins `daemon.store.models.metadata`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    cast,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.enqueue import EnqueueOps
from daemon.store.errors import LeaseLost
from daemon.store.jobs import Job, JobSpec, job_from_row, utcnow
from daemon.store.models import Base, UTCDateTime, jobs, outputs
from daemon.store.outputs import OutputOps
from daemon.store.states import FINISHED_STATES, JobState


class ReviewState(StrEnum):
    AWAITING = "awaiting"  # restored, held in staging until a person decides
    ACCEPTED = "accepted"  # published (by a person, or directly when review is not required)
    REJECTED = "rejected"  # discarded (staged) or reverted (published); remembered


#: Decisions a person may make, by the state they start from.
REVIEW_TRANSITIONS: dict[ReviewState, frozenset[ReviewState]] = {
    ReviewState.AWAITING: frozenset({ReviewState.ACCEPTED, ReviewState.REJECTED}),
    # review off: a published restoration can still be rejected (its output is reverted)
    ReviewState.ACCEPTED: frozenset({ReviewState.REJECTED}),
    ReviewState.REJECTED: frozenset(),
}

#: A claim older than this is taken to belong to a process that died mid-decision.
CLAIM_STALE_SECONDS = 600.0


class ReviewRow(Base):
    __tablename__ = "reviews"

    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    staged: Mapped[bool] = mapped_column(Boolean, default=False)
    flags: Mapped[list[str]] = mapped_column(JSON)
    face_check: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    flow_confidence: Mapped[float | None] = mapped_column(Float)
    like_role: Mapped[str] = mapped_column(String(16))
    staged_signature: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    restored_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    claim: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    redo_job_id: Mapped[int | None] = mapped_column(Integer)


reviews = ReviewRow.__table__


@dataclass(frozen=True, slots=True)
class Review:
    """One restoration as the review page and `lmd review` show it: the review row and its
    job. `staged` says whether it was held in staging (versus published directly); `flags`
    why it needs a look (review required, identity drift, low flow confidence)."""

    job: Job
    state: ReviewState
    staged: bool
    flags: list[str]
    face_check: dict[str, Any] | None
    flow_confidence: float | None
    like_role: str
    staged_signature: dict[str, Any] | None
    restored_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str | None
    claim: str | None
    redo_job_id: int | None

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def superseded_by(self) -> int | None:
        """The newer job of the asset that superseded this one (its inputs changed since):
        an `awaiting` restoration is then stale, and cannot be accepted."""
        return self.job.superseded_by

    @property
    def face_status(self) -> str:
        return (self.face_check or {}).get("status", "not checked")

    def to_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "job_id": job.id,
            "state": self.state.value,
            "asset": job.asset_key,
            "path": job.path,
            "restorer": job.restorer,
            "staged": self.staged,
            "flags": list(self.flags),
            "flow_confidence": self.flow_confidence,
            "face_check": self.face_check,
            "output_path": job.output_path,
            "output_mode": job.output.mode if job.output else None,
            "restored_at": self.restored_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by,
            "note": self.note,
            "redo_job_id": self.redo_job_id,
            "superseded_by": self.superseded_by,
        }


def _review(row: Any) -> Review:
    """A `Review` from a row of `reviews` joined with `jobs` (every column of both)."""
    mapping = row._mapping
    data = {c.name: mapping[reviews.c[c.name]] for c in reviews.columns}
    job = job_from_row(SimpleNamespace(_mapping={c.name: mapping[c] for c in jobs.columns}))
    return Review(
        job=job,
        state=ReviewState(data["state"]),
        staged=bool(data["staged"]),
        flags=list(data["flags"] or []),
        face_check=data["face_check"],
        flow_confidence=data["flow_confidence"],
        like_role=data["like_role"],
        staged_signature=data["staged_signature"],
        restored_at=data["restored_at"],
        decided_at=data["decided_at"],
        decided_by=data["decided_by"],
        note=data["note"],
        claim=data["claim"],
        redo_job_id=data["redo_job_id"],
    )


def _states(state: ReviewState | str | Iterable[ReviewState | str] | None) -> list[str] | None:
    if state is None or state == "all":
        return None
    if isinstance(state, str):
        return [ReviewState(state).value]
    return sorted(ReviewState(s).value for s in state)


def _filtered(query: Any, state: Any, flagged: bool | None) -> Any:
    """`query` over reviews of succeeded jobs in `state`, flagged or not (`list_reviews`).
    An empty flag list is stored as the JSON text `[]` on both backends."""
    query = query.select_from(reviews).join(jobs, jobs.c.id == reviews.c.job_id).where(
        jobs.c.state == JobState.SUCCEEDED.value
    )
    wanted = _states(state)
    if wanted is not None:
        query = query.where(reviews.c.state.in_(wanted))
    if flagged is not None:
        text = cast(reviews.c.flags, Text)
        query = query.where(text != "[]" if flagged else text == "[]")
    return query


class ReviewOps(OutputOps):
    # ---- the worker's side -----------------------------------------------------------

    def record_review(
        self,
        job_id: int,
        *,
        staged: bool,
        flags: list[str],
        face_check: Mapping[str, Any] | None,
        flow_confidence: float | None,
        like_role: str,
        staged_signature: Mapping[str, Any] | None,
        worker: str | None = None,
    ) -> None:
        """Note a finished restoration (before the worker records the job's success, so that
        no succeeded job ever lacks its row): held in staging (`awaiting`) or published
        directly (`accepted`, decided by "auto"). A job that runs again (reprocess, redo)
        gets a fresh row; the earlier decisions stay in the job's history. With `worker`, only
        while that worker holds the running job (`LeaseLost` otherwise)."""

        def run(conn: Connection) -> None:
            now = utcnow()
            if worker is not None:
                held = conn.execute(
                    select(jobs.c.state, jobs.c.lease_owner).where(jobs.c.id == job_id)
                ).first()
                if held is None or held.state != JobState.RUNNING or held.lease_owner != worker:
                    raise LeaseLost(f"job {job_id} is no longer held by {worker}")
            values = {
                "state": (ReviewState.AWAITING if staged else ReviewState.ACCEPTED).value,
                "staged": staged,
                "flags": list(flags),
                "face_check": dict(face_check) if face_check is not None else None,
                "flow_confidence": flow_confidence,
                "like_role": like_role,
                "staged_signature": dict(staged_signature) if staged_signature else None,
                "restored_at": now,
                "decided_at": None if staged else now,
                "decided_by": None if staged else "auto",
                "note": None,
                "claim": None,
                "claimed_at": None,
                "redo_job_id": None,
            }
            exists = conn.execute(
                select(reviews.c.job_id).where(reviews.c.job_id == job_id)
            ).first()
            if exists is None:
                conn.execute(insert(reviews).values(job_id=job_id, **values))
            else:
                conn.execute(update(reviews).where(reviews.c.job_id == job_id).values(**values))
            state = self._state_of(conn, job_id)
            why = ", ".join(flags) or "review required"
            reason = (
                f"review: staged, awaiting a decision ({why})" if staged
                else "review: published without review" + (f" ({why})" if flags else "")
            )
            self._event(conn, job_id, state, state, reason, worker, now)

        self._retrying(run)

    # ---- reading ---------------------------------------------------------------------

    def list_reviews(
        self,
        state: ReviewState | str | Iterable[ReviewState | str] | None = None,
        *,
        flagged: bool | None = None,
        limit: int | None = 500,
        offset: int = 0,
    ) -> list[Review]:
        """Reviews of succeeded jobs, newest restoration first, `limit` from `offset` (a page
        of the grid). `state` None or "all": any; `flagged`: only those with (True) or without
        (False) a reason to look. Both filters are in the query, so pages are exact."""
        query = (
            _filtered(select(reviews, jobs), state, flagged)
            .order_by(reviews.c.restored_at.desc(), reviews.c.job_id.desc())
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_review(row) for row in rows]

    def count_reviews(
        self, state: ReviewState | str | None = None, *, flagged: bool | None = None
    ) -> int:
        """How many `list_reviews(state, flagged=...)` lists without a limit (the pages)."""
        with self._read() as conn:
            return int(conn.execute(_filtered(select(func.count()), state, flagged)).scalar())

    def get_review(self, job_id: int) -> Review | None:
        """The review of a succeeded job, or None (no row, or the job is not succeeded: it is
        running again, or was superseded and cancelled)."""
        query = (
            select(reviews, jobs)
            .join(jobs, jobs.c.id == reviews.c.job_id)
            .where(reviews.c.job_id == job_id, jobs.c.state == JobState.SUCCEEDED.value)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else _review(row)

    def review_neighbours(
        self, job_id: int, state: str | None = None
    ) -> tuple[int | None, int | None]:
        """The job ids just before and after `job_id` in `list_reviews(state)` order (newest
        restoration first): the detail page's ← and →."""
        wanted = _states(state)

        def neighbour(conn: Connection, at: Any, newer: bool) -> int | None:
            key = (reviews.c.restored_at, reviews.c.job_id)
            after = tuple_(*key) > tuple_(at.restored_at, job_id)
            before = tuple_(*key) < tuple_(at.restored_at, job_id)
            query = (
                select(reviews.c.job_id)
                .join(jobs, jobs.c.id == reviews.c.job_id)
                .where(jobs.c.state == JobState.SUCCEEDED.value, after if newer else before)
                .order_by(*(k.asc() if newer else k.desc() for k in key))
                .limit(1)
            )
            if wanted is not None:
                query = query.where(reviews.c.state.in_(wanted))
            return conn.execute(query).scalar()

        with self._read() as conn:
            at = conn.execute(
                select(reviews.c.restored_at).where(reviews.c.job_id == job_id)
            ).first()
            if at is None:
                return (None, None)
            return (neighbour(conn, at, True), neighbour(conn, at, False))

    def review_counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in ReviewState}
        query = (
            select(reviews.c.state, func.count())
            .join(jobs, jobs.c.id == reviews.c.job_id)
            .where(jobs.c.state == JobState.SUCCEEDED.value)
            .group_by(reviews.c.state)
        )
        with self._read() as conn:
            for state, n in conn.execute(query):
                out[state] = int(n)
        return out

    # ---- decisions ---------------------------------------------------------------------

    def claim_review(
        self, job_id: int, expected: Iterable[ReviewState], token: str, *, current: bool = False
    ) -> Review | None:
        """Take the right to decide on `job_id` while its review is in one of `expected`
        (and its job succeeded; with `current`, and no newer job superseded it: an accept
        must not publish a restoration of inputs that changed since). None when it is not, or
        another decision holds a fresh claim."""
        wanted = sorted(ReviewState(s).value for s in expected)

        def run(conn: Connection) -> bool:
            now = utcnow()
            stale = now - timedelta(seconds=CLAIM_STALE_SECONDS)
            job_ok = select(jobs.c.id).where(
                jobs.c.id == job_id, jobs.c.state == JobState.SUCCEEDED.value
            )
            if current:
                job_ok = job_ok.where(jobs.c.superseded_by.is_(None))
            result = conn.execute(
                update(reviews)
                .where(
                    reviews.c.job_id == job_id,
                    reviews.c.state.in_(wanted),
                    (reviews.c.claim.is_(None)) | (reviews.c.claimed_at < stale),
                    reviews.c.job_id.in_(job_ok),
                )
                .values(claim=token, claimed_at=now)
            )
            return result.rowcount == 1

        if not self._retrying(run):
            return None
        return self.get_review(job_id)

    def review_claim_holds(self, job_id: int, token: str) -> bool:
        """Whether `token` still holds the claim (the fence of a decision's file write)."""
        with self._read() as conn:
            claim = conn.execute(
                select(reviews.c.claim)
                .join(jobs, jobs.c.id == reviews.c.job_id)
                .where(reviews.c.job_id == job_id, jobs.c.state == JobState.SUCCEEDED.value)
            ).scalar()
        return claim == token

    def release_review(self, job_id: int, token: str, note: str | None = None) -> None:
        """Give a claim back without a decision (the write failed: `note` says why)."""
        with self._write() as conn:
            conn.execute(
                update(reviews)
                .where(reviews.c.job_id == job_id, reviews.c.claim == token)
                .values(claim=None, claimed_at=None, note=note)
            )

    def finish_review(
        self,
        job_id: int,
        token: str,
        new: ReviewState,
        *,
        decided_by: str,
        note: str | None = None,
        output: tuple[str | None, Mapping[str, Any] | None] | None = None,
        kind: str | None = None,
        record: str | None = None,
        redo_job_id: int | None = None,
    ) -> bool:
        """Record a decision made under the claim `token`, with the job's recorded output
        (`output` = (path, signature); None leaves it as it is) and a job event, in one
        transaction. A published output joins the index of lmd's outputs (`kind`, and a
        replaced still's backup `record`); a withdrawn one (`output` = (None, None)) is marked
        reverted there. False (nothing recorded) when the claim no longer holds."""

        def run(conn: Connection) -> bool:
            row = conn.execute(
                select(reviews.c.state, reviews.c.claim).where(reviews.c.job_id == job_id)
            ).first()
            if row is None or row.claim != token:
                return False
            current = ReviewState(row.state)
            if new not in REVIEW_TRANSITIONS[current]:
                raise ValueError(f"a review that is {current.value} cannot become {new.value}")
            state = self._state_of(conn, job_id)
            if state != JobState.SUCCEEDED:
                return False
            now = utcnow()
            conn.execute(
                update(reviews)
                .where(reviews.c.job_id == job_id)
                .values(
                    state=new.value, decided_at=now, decided_by=decided_by, note=note,
                    claim=None, claimed_at=None, redo_job_id=redo_job_id,
                )
            )
            if output is not None:
                path, signature = output
                if path is not None and signature is not None:
                    self._record_output(
                        conn, job_id, path, signature, kind or "sidecar-tree", record, now
                    )
                else:
                    conn.execute(
                        update(outputs)
                        .where(outputs.c.job_id == job_id, outputs.c.reverted_at.is_(None))
                        .values(reverted_at=now)
                    )
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(
                        output_path=path,
                        output_signature=dict(signature) if signature is not None else None,
                        updated_at=now,
                    )
                )
            reason = f"review: {new.value} by {decided_by}" + (f" ({note})" if note else "")
            self._event(conn, job_id, state, state, reason, decided_by, now)
            return True

        return self._retrying(run)

    # ---- redo --------------------------------------------------------------------------

    def enqueue_redo(self, spec: JobSpec, rejected_job_id: int) -> int:
        """Queue `spec` (the same inputs, another restorer) for a rejected job, and return its
        id. Unlike a scan's enqueue, the rejected job stays current (not superseded): a later
        scan then finds its identity and leaves the asset alone, instead of making it current
        again and cancelling the redo. An earlier job with the same identity is queued again."""

        def run(conn: Connection) -> int:
            # the scan's enqueue (one recipe); `self` is a JobStore, an EnqueueOps too
            result = EnqueueOps._enqueue(self, conn, spec)  # type: ignore[arg-type]
            conn.execute(
                update(jobs)
                .where(jobs.c.id == rejected_job_id, jobs.c.superseded_by == result.job_id)
                .values(superseded_by=None)
            )
            if not result.created:
                state = self._state_of(conn, result.job_id)
                if state in FINISHED_STATES:
                    self._requeue(conn, result.job_id, state, "redo requested", force=True)
            return result.job_id

        return self._retrying(run)
