"""The `control` table: small flags every process reads (pause, the watcher's mode)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from daemon.store.base import StoreBase
from daemon.store.jobs import utcnow
from daemon.store.models import control

PAUSED_KEY = "paused"


class ControlOps(StoreBase):
    def get_control(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(control.c.value).where(control.c.key == key)).scalar()

    def set_control(self, key: str, value: str | None) -> None:
        now = utcnow()

        def run(conn: Connection) -> None:
            done = conn.execute(
                update(control).where(control.c.key == key).values(value=value, updated_at=now)
            )
            if done.rowcount == 0:
                conn.execute(insert(control).values(key=key, value=value, updated_at=now))

        self._retrying(run)

    def is_paused(self) -> bool:
        return self.get_control(PAUSED_KEY) == "1"

    def set_paused(self, paused: bool) -> None:
        self.set_control(PAUSED_KEY, "1" if paused else "0")
