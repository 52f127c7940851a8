"""When things happen: the rescan cron and the worker's windows, as APScheduler triggers.

APScheduler is used for its triggers only — a cron for the reconciliation scan and cron
triggers that open and close the worker's windows — with the in-memory job store, so nothing
about timing is persisted twice (the job table is the only queue). Whether "now" is inside a
window is a pure function (`in_windows`), so the worker can ask at any moment and tests can
ask about any moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from daemon.settings import parse_window

log = structlog.get_logger(__name__)


def _inside(start: time, end: time, moment: time) -> bool:
    if start == end:  # "00:00-24:00" or a degenerate window: all day
        return True
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # wraps past midnight


def in_windows(windows: Sequence[str], now: datetime) -> bool:
    """True when `now` (local wall time) is inside one of the windows; no windows = always."""
    if not windows:
        return True
    moment = now.time().replace(tzinfo=None)
    return any(_inside(*parse_window(window), moment) for window in windows)


def next_window_start(windows: Sequence[str], now: datetime) -> datetime | None:
    """The next time a window opens after `now` (None when there are no windows)."""
    if not windows:
        return None
    candidates = []
    for window in windows:
        start, _end = parse_window(window)
        at = now.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
        if at <= now:
            at += timedelta(days=1)
        candidates.append(at)
    return min(candidates)


def describe_windows(windows: Sequence[str]) -> str:
    return ", ".join(windows) if windows else "always"


class ServiceClock:
    """Owns the BackgroundScheduler: calls `on_scan` on the rescan cron and `on_window` when a
    worker window opens or closes, so a sleeping worker wakes up at the start of its window."""

    def __init__(
        self,
        scan_cron: str,
        windows: Sequence[str],
        on_scan: Callable[[], None],
        on_window: Callable[[bool], None],
    ) -> None:
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(
            on_scan, CronTrigger.from_crontab(scan_cron), id="rescan", coalesce=True,
            max_instances=1, misfire_grace_time=3600,
        )
        for index, window in enumerate(windows):
            start, end = parse_window(window)
            self._scheduler.add_job(
                on_window, CronTrigger(hour=start.hour, minute=start.minute), args=[True],
                id=f"window-open-{index}", coalesce=True,
            )
            self._scheduler.add_job(
                on_window, CronTrigger(hour=end.hour, minute=end.minute), args=[False],
                id=f"window-close-{index}", coalesce=True,
            )
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            self._scheduler.start()
            log.info("scheduler_started", jobs=[job.id for job in self._scheduler.get_jobs()])

    def next_scan(self) -> datetime | None:
        job = self._scheduler.get_job("rescan")
        return job.next_run_time if job else None

    def shutdown(self) -> None:
        with self._lock:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=False)
