"""The publish outbox: deliveries to Immich, PhotoPrism and hooks, kept in the job database.

Why in the database: a delivery is the word to a viewer that a still was published. Kept in
memory it died with the process, and the person's Immich never showed the restoration. Here
each delivery is a `publish_outbox` row that outlives restarts; `daemon.publish.outbox.Outbox`
works through the rows of its publishers.

A delivery is tried under a claim (`claim_outbox`: owner and lease, one short write
transaction, `FOR UPDATE SKIP LOCKED` on PostgreSQL like the job claim), and every way out of
the claim (`outbox_delivered`, `outbox_retry_later`, `outbox_give_up`) is guarded on the owner:
two workers never deliver one entry twice, and an entry whose worker died mid-try is taken
again once its lease ran out. The claim counts the attempt, so a try cut short by a crash
counts too. The due time (`next_attempt_at`) is wall-clock UTC in the row, so a backoff
persists across restarts, and the claim picks the earliest due entry: an entry waiting out its
backoff never stands in the way of one that is due.

The table is defined here, beside the only code that reads it (the schema test compares it
with the migrations like every other table: it joins `daemon.store.models.metadata`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Index, Integer, String, delete, func, insert, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from daemon.store.base import StoreBase
from daemon.store.escaped import EscapedJSON, EscapedText
from daemon.store.jobs import utcnow
from daemon.store.models import Base, UTCDateTime


class OutboxState(StrEnum):
    PENDING = "pending"  # waiting for its next try (or being tried under a claim)
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: not retryable, or out of attempts


class OutboxRow(Base):
    __tablename__ = "publish_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(Integer, index=True)
    publisher: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    coalesce_key: Mapped[str | None] = mapped_column(EscapedText())
    payload: Mapped[dict[str, Any]] = mapped_column(EscapedJSON())
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(EscapedText())
    claim_owner: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_publish_outbox_state_next_attempt_at", "state", "next_attempt_at"),)


publish_outbox = OutboxRow.__table__


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One delivery as the outbox and `lmd status` see it."""

    id: str
    job_id: int | None
    publisher: str
    kind: str
    coalesce_key: str | None
    payload: dict[str, Any]
    state: OutboxState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    claim_owner: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "publisher": self.publisher,
            "kind": self.kind,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
        }


def _entry(row: Any) -> OutboxEntry:
    m = row._mapping
    return OutboxEntry(
        id=m["id"], job_id=m["job_id"], publisher=m["publisher"], kind=m["kind"],
        coalesce_key=m["coalesce_key"], payload=dict(m["payload"] or {}),
        state=OutboxState(m["state"]), attempts=int(m["attempts"]),
        next_attempt_at=m["next_attempt_at"], last_error=m["last_error"],
        claim_owner=m["claim_owner"], created_at=m["created_at"], updated_at=m["updated_at"],
    )


def _unclaimed(now: datetime) -> Any:
    """No claim on the row, or one whose lease ran out (its worker died mid-try)."""
    c = publish_outbox.c
    return or_(c.claim_owner.is_(None), c.claim_expires_at < now)


class OutboxOps(StoreBase):
    def add_outbox(
        self,
        publisher: str,
        kind: str,
        payload: Mapping[str, Any],
        *,
        job_id: int | None = None,
        coalesce_key: str | None = None,
        due: datetime | None = None,
    ) -> OutboxEntry | None:
        """Record a delivery, due at `due` (now). With `coalesce_key`, None (nothing added)
        when a pending, unclaimed delivery of `publisher` with that key already waits: a burst
        of jobs in one folder asks for one rescan."""

        def run(conn: Connection) -> OutboxEntry | None:
            now = utcnow()
            c = publish_outbox.c
            if coalesce_key is not None:
                waiting = conn.execute(
                    select(c.id).where(
                        c.publisher == publisher, c.coalesce_key == coalesce_key,
                        c.state == OutboxState.PENDING.value, _unclaimed(now),
                    ).limit(1)
                ).first()
                if waiting is not None:
                    return None
            values = {
                "id": uuid.uuid4().hex, "job_id": job_id, "publisher": publisher, "kind": kind,
                "coalesce_key": coalesce_key, "payload": dict(payload),
                "state": OutboxState.PENDING.value, "attempts": 0,
                "next_attempt_at": due or now, "last_error": None, "claim_owner": None,
                "claim_expires_at": None, "created_at": now, "updated_at": now,
            }
            conn.execute(insert(publish_outbox).values(**values))
            row = conn.execute(select(publish_outbox).where(c.id == values["id"])).first()
            return _entry(row)

        return self._retrying(run)

    def claim_outbox(
        self, publishers: Iterable[str], owner: str, lease_seconds: float
    ) -> OutboxEntry | None:
        """Take the earliest due, unclaimed pending delivery of one of `publishers` under a
        lease of `lease_seconds`, counting an attempt; None when nothing is due."""
        names = sorted(set(publishers))
        c = publish_outbox.c

        def run(conn: Connection) -> OutboxEntry | None:
            now = utcnow()
            candidate = conn.execute(
                select(c.id)
                .where(
                    c.publisher.in_(names), c.state == OutboxState.PENDING.value,
                    c.next_attempt_at <= now, _unclaimed(now),
                )
                .order_by(c.next_attempt_at, c.created_at, c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if candidate is None:
                return None
            taken = conn.execute(
                update(publish_outbox)
                .where(c.id == candidate.id, c.state == OutboxState.PENDING.value, _unclaimed(now))
                .values(
                    claim_owner=owner, claim_expires_at=now + timedelta(seconds=lease_seconds),
                    attempts=c.attempts + 1, updated_at=now,
                )
            )
            if taken.rowcount != 1:  # pragma: no cover - locked (PG) or the db is (SQLite)
                return None
            return _entry(conn.execute(select(publish_outbox).where(c.id == candidate.id)).first())

        return self._retrying(run)

    def _finish_claim(self, entry_id: str, owner: str, **values: Any) -> bool:
        c = publish_outbox.c

        def run(conn: Connection) -> bool:
            result = conn.execute(
                update(publish_outbox)
                .where(
                    c.id == entry_id, c.claim_owner == owner,
                    c.state == OutboxState.PENDING.value,
                )
                .values(claim_owner=None, claim_expires_at=None, updated_at=utcnow(), **values)
            )
            return result.rowcount == 1

        return self._retrying(run)

    def outbox_delivered(self, entry_id: str, owner: str) -> bool:
        """Mark a claimed delivery done; False when `owner` no longer holds its claim."""
        return self._finish_claim(entry_id, owner, state=OutboxState.DELIVERED.value)

    def outbox_retry_later(
        self, entry_id: str, owner: str, error: str, next_attempt_at: datetime
    ) -> bool:
        """Give a claimed delivery back with its error, due again at `next_attempt_at`."""
        return self._finish_claim(
            entry_id, owner, last_error=error, next_attempt_at=next_attempt_at
        )

    def outbox_give_up(self, entry_id: str, owner: str, error: str) -> bool:
        """Mark a claimed delivery failed for good (kept for `lmd status` and a person)."""
        return self._finish_claim(
            entry_id, owner, state=OutboxState.FAILED.value, last_error=error
        )

    def next_outbox_due(self, publishers: Iterable[str]) -> datetime | None:
        """When the earliest pending delivery of `publishers` is due (a claimed one: when its
        lease runs out), or None when none waits: how long the outbox thread may sleep."""
        c = publish_outbox.c
        due = func.coalesce(c.claim_expires_at, c.next_attempt_at)
        with self._read() as conn:
            rows = conn.execute(
                select(c.next_attempt_at, c.claim_expires_at).where(
                    c.publisher.in_(sorted(set(publishers))),
                    c.state == OutboxState.PENDING.value,
                ).order_by(due).limit(1)
            ).first()
        if rows is None:
            return None
        return max(rows.next_attempt_at, rows.claim_expires_at or rows.next_attempt_at)

    def list_outbox(
        self,
        state: OutboxState | str | None = None,
        *,
        publishers: Iterable[str] | None = None,
        limit: int | None = 100,
    ) -> list[OutboxEntry]:
        """Deliveries, earliest due first; `state` None: any."""
        c = publish_outbox.c
        query = select(publish_outbox).order_by(c.next_attempt_at, c.created_at, c.id)
        if state is not None:
            query = query.where(c.state == OutboxState(state).value)
        if publishers is not None:
            query = query.where(c.publisher.in_(sorted(set(publishers))))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_entry(row) for row in conn.execute(query)]

    def outbox_counts(self) -> dict[str, dict[str, int]]:
        """{publisher: {"pending": n, "failed": n, "delivered": n}} of every publisher with a
        row (`lmd status`)."""
        c = publish_outbox.c
        out: dict[str, dict[str, int]] = {}
        query = select(c.publisher, c.state, func.count()).group_by(c.publisher, c.state)
        with self._read() as conn:
            for publisher, state, n in conn.execute(query):
                counts = out.setdefault(publisher, {s.value: 0 for s in OutboxState})
                counts[state] = int(n)
        return out

    def prune_outbox(self, older_than: datetime) -> int:
        """Forget deliveries delivered before `older_than` (failed ones stay for a person)."""
        c = publish_outbox.c
        with self._write() as conn:
            result = conn.execute(
                delete(publish_outbox).where(
                    c.state == OutboxState.DELIVERED.value, c.updated_at < older_than
                )
            )
        return int(result.rowcount or 0)
