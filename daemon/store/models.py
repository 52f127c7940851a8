"""The schema as SQLAlchemy 2.x models. Alembic (migrations/) creates it; a test proves the
migrations and these models agree exactly, so either can be read as the truth.

Columns that may hold file names (paths, asset keys, payloads, messages quoting them) are
`EscapedText`/`EscapedJSON` (`daemon.store.escaped`): any name the filesystem allows round-trips.

The store talks to these tables with Core statements (`Jobs.__table__`), not ORM sessions:
claims must be a handful of short statements, and callers get plain dataclasses back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from daemon.store.escaped import EscapedJSON, EscapedText

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the backend stores.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    text (which also sorts correctly) and get their UTC tzinfo back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    asset_key: Mapped[str] = mapped_column(EscapedText(), index=True)
    state: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(EscapedText())
    payload: Mapped[dict[str, Any]] = mapped_column(EscapedJSON())
    restorer: Mapped[str] = mapped_column(String(64))
    weights_digest: Mapped[str] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(EscapedJSON())
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    output_path: Mapped[str | None] = mapped_column(EscapedText())
    output_signature: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(EscapedJSON(none_as_null=True))
    progress: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(64))
    superseded_by: Mapped[int | None] = mapped_column(Integer, ForeignKey("jobs.id"))
    # ---- third migration (0003): how and where the output is written, pinned at enqueue.
    # NULL only on jobs enqueued before 0003; the worker refuses those (a rescan replaces them).
    output_mode: Mapped[str | None] = mapped_column(String(16))
    output_location: Mapped[str | None] = mapped_column(String(16))
    output_root: Mapped[str | None] = mapped_column(EscapedText())
    output_tree: Mapped[str | None] = mapped_column(EscapedText())
    output_suffix: Mapped[str | None] = mapped_column(String(64))
    backup_dir: Mapped[str | None] = mapped_column(EscapedText())
    jpeg_quality: Mapped[int | None] = mapped_column(Integer)
    heic_quality: Mapped[int | None] = mapped_column(Integer)
    # ---- sixth migration (0006): the lease's generation, the fencing token every claim bumps
    # and every commit of a result checks (see `daemon.store.queue`)
    lease_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # ---- eighth migration (0008): what of the asset the job restores ('still' or 'video')
    kind: Mapped[str] = mapped_column(String(16), default="still", server_default="still")
    # ---- ninth migration (0009): how a beside output is named (NULL: lmd's suffix)
    output_naming: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        # the claim query: claimable state, earliest not_before, then priority/id
        Index("ix_jobs_state_not_before", "state", "not_before"),
        Index("ix_jobs_state_lease_expires_at", "state", "lease_expires_at"),
    )


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(EscapedText())
    worker: Mapped[str | None] = mapped_column(String(255))


class WorkerRow(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float | None] = mapped_column(Float)
    stage: Mapped[str | None] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(255))
    restorer: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScanRow(Base):
    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    root: Mapped[str] = mapped_column(EscapedText())
    trigger: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files_seen: Mapped[int] = mapped_column(Integer, default=0)
    assets_found: Mapped[int] = mapped_column(Integer, default=0)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    unreadable: Mapped[int] = mapped_column(Integer, default=0)


# ---- second migration (0002): scan cache, control flags (its `backups` table was dropped in
# 0004: replace mode's records beside the backups are the one source of truth) ----


class AssetRow(Base):
    __tablename__ = "assets"

    key: Mapped[str] = mapped_column(EscapedText(), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(EscapedJSON())
    reason: Mapped[str | None] = mapped_column(EscapedText())
    restorable: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    scan_id: Mapped[int | None] = mapped_column(Integer)


class ControlRow(Base):
    __tablename__ = "control"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ---- sixth migration (0006): every output lmd wrote ----


class OutputRow(Base):
    """One output lmd wrote: its content (named digest) and the job that wrote it, where it is
    now as far as lmd knows, and for a replaced still the record beside its backup (and the
    target that record names, which follows the still when it moves)."""

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(160), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(EscapedText())
    record: Mapped[str | None] = mapped_column(EscapedText())
    record_target: Mapped[str | None] = mapped_column(EscapedText())
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reverted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


metadata = Base.metadata
jobs = JobRow.__table__
job_events = JobEventRow.__table__
workers = WorkerRow.__table__
scans = ScanRow.__table__
assets = AssetRow.__table__
control = ControlRow.__table__
outputs = OutputRow.__table__
