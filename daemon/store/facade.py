"""`JobStore`: the one object callers hold, and `open_store` that gives them one.

Modelled on procrastinate: explicit states (`states.py`), every state change through one
function (`StoreBase._transition`) that checks `TRANSITIONS` and writes a `job_events` row in
the same transaction, claims that are one short write transaction and leases renewed by
heartbeat. Each concern lives in its own module as a mixin over `StoreBase`; `JobStore` only
composes them, so callers keep one facade while no module holds more than one concept.
"""

from __future__ import annotations

from daemon.store.asset_cache import AssetCacheOps
from daemon.store.commands import CommandOps
from daemon.store.control import ControlOps
from daemon.store.db import open_engine
from daemon.store.enqueue import EnqueueOps
from daemon.store.outbox import OutboxOps
from daemon.store.queries import QueryOps
from daemon.store.queue import LeaseOps
from daemon.store.review import ReviewOps
from daemon.store.scans import ScanOps
from daemon.store.workers import WorkerOps


class JobStore(
    EnqueueOps,
    LeaseOps,
    CommandOps,
    QueryOps,
    WorkerOps,
    ScanOps,
    AssetCacheOps,
    ControlOps,
    ReviewOps,
    OutboxOps,
):
    """The queue and bookkeeping over one engine. Thread-safe (one connection per call);
    open one per process."""

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(database_url: str, *, migrate: bool = True) -> JobStore:
    """Open (and by default migrate) the job store. Raises `StoreError` with a clear message
    for a database that cannot be used (network filesystem, unreachable server, too old, a
    file that is not a database)."""
    return JobStore(open_engine(database_url, migrate=migrate))
