"""What "status" contains: the one definition behind `lmd status` (JSON and tables) and the
demo's summary.

Plain data from the store (counts per state, pause, recent failures, last scan, workers with
a staleness flag, library problems) and from the settings (restorer, database URL without its
password), ready for JSON. The daemon's own systemd status line is shorter and built in
`daemon.service`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daemon.store.states import WorkerState

if TYPE_CHECKING:
    from daemon.settings import Settings
    from daemon.store import JobStore

#: A worker row not refreshed for this long belongs to a process that is gone (killed, crashed,
#: powered off); live workers refresh at least every minute (`daemon.worker.loop`).
STALE_WORKER_SECONDS = 600


def mask_url(url: str) -> str:
    """A database URL fit to show: the password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def with_staleness(worker: dict[str, Any]) -> dict[str, Any]:
    """A `workers` row with `stale`: True when a worker that did not stop cleanly has not
    refreshed its row for `STALE_WORKER_SECONDS`."""
    beat = worker.get("heartbeat_at")
    if isinstance(beat, str):
        beat = datetime.fromisoformat(beat)
    age = (datetime.now(UTC) - beat).total_seconds() if isinstance(beat, datetime) else None
    stopped = worker.get("state") == WorkerState.STOPPED
    stale = not stopped and (age is None or age > STALE_WORKER_SECONDS)
    return {**worker, "stale": stale}


def status_payload(store: JobStore, settings: Settings | None = None) -> dict[str, Any]:
    """Everything `lmd status` shows, as JSON-ready data."""
    restorer: dict[str, Any] | None = None
    if settings is not None:
        checkpoint = settings.restorer.checkpoint
        restorer = {
            "name": settings.restorer.name,
            "device": settings.restorer.device,
            "checkpoint": str(checkpoint) if checkpoint else None,
            "params": dict(settings.restorer.params),
        }
    return {
        "jobs": store.counts(),
        "paused": store.is_paused(),
        "failures": store.recent_failures(10),
        "last_scan": store.last_scan(),
        "worker": [with_staleness(w) for w in store.get_workers()],
        "restorer": restorer,
        "watcher_mode": store.get_control("watcher_mode"),
        "library_problems": store.library_problems(20),
        "database": mask_url(settings.database_url) if settings is not None else None,
    }
