"""The `backups` table: replace mode's backups of the stills it swapped out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import utcnow
from daemon.store.models import backups


class BackupOps(StoreBase):
    def record_backup(
        self,
        job_id: int | None,
        target_path: str,
        backup_path: str,
        original_signature: Mapping[str, Any] | None,
        restored_signature: Mapping[str, Any] | None,
    ) -> int:
        with self._write() as conn:
            return conn.execute(
                insert(backups)
                .values(
                    job_id=job_id, target_path=str(target_path), backup_path=str(backup_path),
                    original_signature=dict(original_signature) if original_signature else None,
                    restored_signature=dict(restored_signature) if restored_signature else None,
                    created_at=utcnow(),
                )
                .returning(backups.c.id)
            ).scalar_one()

    def backups_for(
        self,
        target_path: str | None = None,
        *,
        job_id: int | None = None,
        include_reverted: bool = False,
    ) -> list[dict[str, Any]]:
        """Backups of one target (or one job, or all), newest first."""
        query = select(backups).order_by(backups.c.created_at.desc(), backups.c.id.desc())
        if target_path is not None:
            query = query.where(backups.c.target_path == str(target_path))
        if job_id is not None:
            query = query.where(backups.c.job_id == job_id)
        if not include_reverted:
            query = query.where(backups.c.reverted_at.is_(None))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def mark_reverted(self, backup_id: int) -> bool:
        with self._write() as conn:
            done = conn.execute(
                update(backups)
                .where(backups.c.id == backup_id, backups.c.reverted_at.is_(None))
                .values(reverted_at=utcnow())
            )
            return done.rowcount == 1
