"""The `assets` table: discovery's results by stat fingerprint (so an unchanged rescan reads
no file), and the library problems (unreadable or unrestorable assets) `lmd status` lists."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import plain_row, utcnow
from daemon.store.models import assets


class AssetCacheOps(StoreBase):
    def lookup_asset(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The cached discovery result for `key`, if its files still have `fingerprint`."""
        with self._read() as conn:
            row = conn.execute(
                select(assets.c.data).where(
                    assets.c.key == key, assets.c.fingerprint == fingerprint
                )
            ).first()
        return dict(row.data) if row is not None else None

    def remember_asset(
        self,
        key: str,
        fingerprint: str,
        data: Mapping[str, Any],
        reason: str | None,
        restorable: bool,
        scan_id: int | None = None,
    ) -> None:
        values = {
            "fingerprint": fingerprint, "data": dict(data), "reason": reason,
            "restorable": bool(restorable), "seen_at": utcnow(), "scan_id": scan_id,
        }

        def run(conn: Connection) -> None:
            done = conn.execute(update(assets).where(assets.c.key == key).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(assets).values(key=key, **values))

        self._retrying(run)

    def forget_asset(self, key: str) -> None:
        with self._write() as conn:
            conn.execute(assets.delete().where(assets.c.key == key))

    def library_problems(self, limit: int = 50) -> list[dict[str, Any]]:
        """Assets that discovery could not read or cannot restore, with the reason."""
        with self._read() as conn:
            rows = conn.execute(
                select(assets.c.key, assets.c.reason, assets.c.restorable, assets.c.seen_at)
                .where(assets.c.reason.is_not(None))
                .order_by(assets.c.seen_at.desc(), assets.c.key)
                .limit(limit)
            ).all()
        return [plain_row(r) for r in rows]
