"""What "status" contains: the one definition behind `lmd status` (JSON and tables) and the
demo's summary.

Plain data from the store (counts per state, of still and of video jobs apart, pause, recent
failures, last scan, workers with a staleness flag, library problems) and from the settings
(restorer, database URL without its password), ready for JSON. The daemon's own systemd
status line is shorter and built in `daemon.service`.
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
        # still and video jobs apart: a clip costs many times a still, and a queue of videos
        # must not read as stills waiting
        "jobs": store.counts("still"),
        "video_jobs": store.counts("video"),
        "paused": store.is_paused(),
        "failures": store.recent_failures(10),
        "last_scan": store.last_scan(),
        "worker": [with_staleness(w) for w in store.get_workers()],
        "restorer": restorer,
        "watcher_mode": store.get_control("watcher_mode"),
        "library_problems": store.library_problems(20),
        "database": mask_url(settings.database_url) if settings is not None else None,
        "deliveries": deliveries(store),
        # succeeded jobs by review state: with review required, what waits for a person
        "reviews": store.review_counts(),
        # whether `[review] required` is on: the counts alone cannot tell "review on, nothing
        # waiting" from "review off" (None without settings)
        "review_required": settings.review.required if settings is not None else None,
    }


def deliveries(store: JobStore) -> dict[str, Any]:
    """The publish outbox (`daemon.store.outbox`): how many deliveries to Immich, PhotoPrism
    and hooks wait or were given up, by publisher, and the latest given up with their error."""
    counts = store.outbox_counts()
    failed = store.list_outbox("failed", limit=None)
    failed.sort(key=lambda e: e.updated_at, reverse=True)
    return {
        "pending": sum(c["pending"] for c in counts.values()),
        "failed": sum(c["failed"] for c in counts.values()),
        "by_publisher": {
            name: {"pending": c["pending"], "failed": c["failed"]} for name, c in counts.items()
        },
        "recent_failed": [
            {**e.to_dict(), "failed_at": e.updated_at.isoformat()} for e in failed[:5]
        ],
    }
