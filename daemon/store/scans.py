"""The `scans` table: when each scan ran, what triggered it and what it found."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import plain_row, utcnow
from daemon.store.models import scans


class ScanOps(StoreBase):
    def start_scan(self, root: str, trigger: str) -> int:
        with self._write() as conn:
            return conn.execute(
                insert(scans)
                .values(
                    root=str(root), trigger=trigger, started_at=utcnow(),
                    files_seen=0, assets_found=0, enqueued=0, unreadable=0,
                )
                .returning(scans.c.id)
            ).scalar_one()

    def finish_scan(
        self,
        scan_id: int,
        *,
        files_seen: int = 0,
        assets_found: int = 0,
        enqueued: int = 0,
        unreadable: int = 0,
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(scans)
                .where(scans.c.id == scan_id)
                .values(
                    finished_at=utcnow(), files_seen=files_seen, assets_found=assets_found,
                    enqueued=enqueued, unreadable=unreadable,
                )
            )

    def last_scan(self) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(
                select(scans).order_by(scans.c.started_at.desc(), scans.c.id.desc()).limit(1)
            ).first()
        return plain_row(row) if row is not None else None
