"""The store's value types: what callers hand in (`JobSpec`) and get back (`Job`, `JobEvent`,
`EnqueueResult`). Plain frozen dataclasses, never ORM objects tied to a session, so a worker
can hold a `Job` across transactions and threads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from daemon.store.states import JobState

DEFAULT_MAX_ATTEMPTS = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    """One row of a job's history: a state change (or a move) with its reason."""

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


def job_from_row(row: Any) -> Job:
    """A `Job` from a `jobs` row (any result row holding every column)."""
    data = dict(row._mapping)
    data["state"] = JobState(data["state"])
    return Job(**{name: data[name] for name in _JOB_FIELDS})


def event_from_row(row: Any) -> JobEvent:
    return JobEvent(
        row.id, row.job_id, row.at,
        JobState(row.from_state) if row.from_state else None,
        JobState(row.to_state), row.reason, row.worker,
    )


def plain_row(row: Any) -> dict[str, Any]:
    """A row as JSON-ready data (datetimes as ISO text), for `lmd status`."""
    out = dict(row._mapping)
    for key, value in out.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out
