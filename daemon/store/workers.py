"""The `workers` table: what each worker process is doing now, for `lmd status`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import plain_row, utcnow
from daemon.store.models import workers
from daemon.store.states import WorkerState


class WorkerOps(StoreBase):
    def upsert_worker(
        self,
        worker_id: str,
        *,
        state: WorkerState,
        hostname: str | None = None,
        pid: int | None = None,
        job_id: int | None = None,
        progress: float | None = None,
        stage: str | None = None,
        window: str | None = None,
        restorer: str | None = None,
        device: str | None = None,
    ) -> None:
        """Record what a worker is doing now (shown by `lmd status`)."""
        now = utcnow()
        values = {
            "state": WorkerState(state).value, "job_id": job_id, "progress": progress,
            "stage": stage, "window": window, "restorer": restorer, "device": device,
            "heartbeat_at": now,
        }
        if hostname is not None:
            values["hostname"] = hostname
        if pid is not None:
            values["pid"] = pid

        def run(conn: Connection) -> None:
            done = conn.execute(update(workers).where(workers.c.id == worker_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(workers).values(id=worker_id, started_at=now, **values))

        self._retrying(run)

    def get_workers(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(workers).order_by(workers.c.id)).all()
        return [plain_row(r) for r in rows]

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))
