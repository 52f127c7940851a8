"""The store's value types: what callers hand in (`JobSpec`) and get back (`Job`, `JobEvent`,
`EnqueueResult`). Plain frozen dataclasses, never ORM objects tied to a session, so a worker
can hold a `Job` across transactions and threads."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from daemon.store.states import JobState

DEFAULT_MAX_ATTEMPTS = 3
#: what of an asset a job restores: its reselected still, or its video (`[video] enabled`)
JobKind = Literal["still", "video"]
STILL: JobKind = "still"
VIDEO: JobKind = "video"


def utcnow() -> datetime:
    return datetime.now(UTC)


HEIC_SUFFIXES = frozenset({".heic", ".heif"})
#: `OutputSpec` fields whose `jobs` column carries an `output_` prefix (the others are named
#: alike: backup_dir, jpeg_quality, heic_quality)
_PREFIXED = frozenset({"mode", "location", "root", "tree", "suffix", "naming"})
#: lmd's own beside naming (`suffix`); the other is "photoprism" (`daemon.output.plan`)
SUFFIX_NAMING = "suffix"


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """How and where a job's output is written, pinned on the job at enqueue.

    The worker plans and writes from this, never from the settings current when it runs, so a
    config change between scan and work cannot make an output one way and record it another;
    it is part of the job identity, so a changed config makes new jobs instead. `mode` is what
    will really happen for this asset: replace mode without a still to replace (the frame
    comes from the video) is pinned as a sidecar in the tree. `root` is the library that
    tree outputs mirror. Has the fields `daemon.output.plan_output` reads.
    """

    mode: Literal["sidecar", "replace"]
    location: Literal["tree", "beside"]
    root: Path
    tree: Path | None
    suffix: str
    backup_dir: Path | None
    jpeg_quality: int
    heic_quality: int
    #: how a beside output is named: "suffix" (lmd's) or "photoprism" (a name it stacks)
    naming: str = SUFFIX_NAMING

    def quality_for(self, destination: Path) -> int:
        """The encoder quality for `destination`'s format (HEIC or JPEG)."""
        heic = Path(destination).suffix.lower() in HEIC_SUFFIXES
        return self.heic_quality if heic else self.jpeg_quality

    def to_dict(self) -> dict[str, Any]:
        """Plain values (paths as text), for the job identity and the job row. `naming`
        only when it is not lmd's suffix: the identities of jobs pinned before it existed
        stay what they were."""
        data = {
            "mode": self.mode,
            "location": self.location,
            "root": str(self.root),
            "tree": None if self.tree is None else str(self.tree),
            "suffix": self.suffix,
            "backup_dir": None if self.backup_dir is None else str(self.backup_dir),
            "jpeg_quality": self.jpeg_quality,
            "heic_quality": self.heic_quality,
        }
        if self.naming != SUFFIX_NAMING:
            data["naming"] = self.naming
        return data

    def to_columns(self) -> dict[str, Any]:
        """The `jobs` columns that hold this spec."""
        data = self.to_dict()
        return {f"output_{k}" if k in _PREFIXED else k: v for k, v in data.items()}

    @classmethod
    def from_columns(cls, row: dict[str, Any]) -> OutputSpec | None:
        """The spec pinned on a row, or None on a job enqueued before outputs were pinned."""
        if row.get("output_mode") is None:
            return None
        tree, backup = row.get("output_tree"), row.get("backup_dir")
        return cls(
            mode=row["output_mode"],
            location=row["output_location"],
            root=Path(row["output_root"]),
            tree=None if tree is None else Path(tree),
            suffix=row["output_suffix"],
            backup_dir=None if backup is None else Path(backup),
            jpeg_quality=int(row["jpeg_quality"]),
            heic_quality=int(row["heic_quality"]),
            naming=row.get("output_naming") or SUFFIX_NAMING,
        )


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the caller knows when enqueueing; `identity` comes from `job_identity(...)` over
    the same restorer, weights, params and output that are pinned here. `output` is None only
    for jobs no worker will run (store tests, benchmarks): a worker refuses such a job."""

    identity: str
    asset_key: str
    payload: dict[str, Any]
    restorer: str
    weights_digest: str
    params: dict[str, Any] = field(default_factory=dict)
    output: OutputSpec | None = None
    priority: int = 0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    not_before: datetime | None = None
    #: a still and a video job of one asset live side by side (see `daemon.store.enqueue`)
    kind: JobKind = STILL


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job_id: int
    created: bool
    superseded: list[int] = field(default_factory=list)
    moved: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """A snapshot of one `jobs` row. `restorer`, `weights_digest`, `params` and `output` are
    what the job was enqueued with, and what a worker runs it with."""

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
    output: OutputSpec | None
    #: the fencing token of the lease this snapshot was claimed under (bumped at every claim);
    #: the worker hands it to every call that commits on the job's behalf
    lease_generation: int = 0
    #: 'still' or 'video' (`JobKind`): which run the worker gives it
    kind: str = STILL

    @property
    def path(self) -> str | None:
        """The file a person recognises this job by: the target still, else the reference; a
        video job's video (`lmd jobs list` then tells an asset's two jobs apart)."""
        if self.kind == VIDEO and self.payload.get("video"):
            return self.payload["video"]
        return self.payload.get("target") or self.payload.get("reference") or self.asset_key

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = self.state.value
        out["output"] = self.output.to_dict() if self.output is not None else None
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


_ROW_FIELDS = [f.name for f in fields(Job) if f.name != "output"]


def job_from_row(row: Any) -> Job:
    """A `Job` from a `jobs` row (any result row holding every column)."""
    data = dict(row._mapping)
    data["state"] = JobState(data["state"])
    output = OutputSpec.from_columns(data)
    return Job(**{name: data[name] for name in _ROW_FIELDS}, output=output)


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
