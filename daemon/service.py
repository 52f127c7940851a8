"""`lmd run`: the daemon's main loop, its signals and its conversation with systemd.

Start-up order matters to systemd: the database is migrated and the watcher is up before
READY=1 (model weights load lazily on the first job). Then the worker runs on the main thread,
so the watchdog pings prove the main loop is alive; scans run on their own thread whenever the
cron, the watcher or the start-up asks for one. On SIGTERM the daemon stops claiming, cancels
the running job between steps (it goes back to pending), extends systemd's stop timeout while
it winds down, and says STOPPING=1.
"""

from __future__ import annotations

import faulthandler
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import structlog

from daemon.notify import Notifier
from daemon.scanner import ignore_patterns, run_scan
from daemon.scheduler import ServiceClock
from daemon.settings import Settings
from daemon.store import JobStore, open_store
from daemon.store.states import WorkerState
from daemon.watcher import LibraryWatcher
from daemon.worker import Worker

log = structlog.get_logger(__name__)

#: How long systemd should wait for the current job to wind down after SIGTERM.
STOP_GRACE_SECONDS = 60


@dataclass
class ScanRequests:
    """Coalesces scan requests: many watcher events or cron ticks become one scan at a time."""

    wanted: threading.Event = field(default_factory=threading.Event)
    triggers: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, trigger: str) -> None:
        with self.lock:
            if trigger not in self.triggers:
                self.triggers.append(trigger)
        self.wanted.set()

    def take(self) -> str:
        with self.lock:
            trigger = "+".join(self.triggers) or "manual"
            self.triggers.clear()
        self.wanted.clear()
        return trigger


class Service:
    def __init__(self, settings: Settings, store: JobStore | None = None) -> None:
        if settings.library is None:
            raise ValueError("no library configured: set `library` in the config file")
        self.settings = settings
        self.library = Path(settings.library)
        self.store = store or open_store(settings.database_url)
        self.notifier = Notifier.from_env()
        self.stopping = threading.Event()
        self.scans = ScanRequests()
        self._last_watchdog = 0.0
        self._last_status = 0.0
        self.worker = Worker(settings, self.store, on_alive=self._alive)
        # `[review] serve = true`: the review page on a thread of the daemon (a bind that is not
        # allowed, e.g. beyond loopback without a token, stops the start here)
        self.review_page = None
        if settings.review.serve:
            from daemon.review.web.server import ReviewServer

            self.review_page = ReviewServer(settings, self.store)
        self.watcher = LibraryWatcher(
            self.library,
            settings.watcher.mode,
            settings.watcher.polling_interval,
            settings.watcher.debounce_seconds,
            on_ready=lambda paths: self.scans.ask("watcher"),
            # The scanner's own list, lmd's outputs included: a sidecar written beside a photo
            # (or into a tree inside the library) must not set off a rescan after every job.
            ignore=ignore_patterns(settings, self.library),
        )
        self.clock = ServiceClock(
            settings.scan.schedule,
            settings.worker.windows,
            on_scan=lambda: self.scans.ask("schedule"),
            on_window=self._window_changed,
        )
        self._scan_thread = threading.Thread(target=self._scan_loop, name="scanner", daemon=True)

    # ---------------------------------------------------------------------- lifecycle
    def run(self) -> int:
        self._install_signals()
        self.watcher.start()
        self.clock.start()
        self._scan_thread.start()
        self._start_review_page()
        if self.settings.scan.on_start:
            self.scans.ask("start")
        self.notifier.ready()
        self.store.set_control("watcher_mode", self.watcher.mode)
        log.info("service_ready", path=str(self.library), watcher=self.watcher.mode,
                 restorer=self.settings.restorer.name)
        self._alive()
        try:
            self.worker.run_forever()
        finally:
            self._shutdown()
        return 0

    def _install_signals(self) -> None:
        def on_term(signum: int, frame: FrameType | None) -> None:
            log.info("service_stopping", signal=signal.Signals(signum).name)
            self.notifier.stopping()
            self.notifier.extend_timeout(STOP_GRACE_SECONDS)
            self.stopping.set()
            self.worker.request_stop()
            self.scans.wanted.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        # `kill -USR1` dumps every thread's stack to the journal: how to see what a hung
        # daemon is doing without a debugger.
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _start_review_page(self) -> None:
        """A page that cannot listen (port taken) is logged; restoring goes on without it."""
        if self.review_page is None:
            return
        try:
            self.review_page.start()
        except Exception as exc:
            log.error("review_page_failed", error=str(exc))
            self.review_page = None

    def _shutdown(self) -> None:
        if self.review_page is not None:
            self.review_page.stop()
        self.watcher.stop()
        self.clock.shutdown()
        self._scan_thread.join(timeout=STOP_GRACE_SECONDS)
        self.store.upsert_worker(worker_id=self.worker.worker_id, state=WorkerState.STOPPED,
                                job_id=None)
        log.info("service_stopped")

    # -------------------------------------------------------------------------- helpers
    def _window_changed(self, opened: bool) -> None:
        log.info("worker_window", opened=opened)
        self.worker.wake()

    def _scan_loop(self) -> None:
        while not self.stopping.is_set():
            self.scans.wanted.wait()
            if self.stopping.is_set():
                return
            trigger = self.scans.take()
            try:
                run_scan(self.settings, self.library, store=self.store, trigger=trigger)
            except Exception as exc:  # a failed scan is logged and retried on the next trigger
                log.error("scan_failed", path=str(self.library), error=str(exc), exc_info=True)
            self.worker.wake()

    def _alive(self) -> None:
        """Called from the worker's loop and its progress callbacks (the main thread)."""
        now = time.monotonic()
        interval = self.notifier.watchdog_interval()
        if interval and now - self._last_watchdog >= interval / 2:
            self.notifier.watchdog()
            self._last_watchdog = now
        if now - self._last_status >= 5:
            counts = self.store.counts()
            self.notifier.status(
                f"{counts.get('pending', 0)} pending, {counts.get('running', 0)} running, "
                f"{counts.get('deferred', 0)} deferred, {counts.get('failed', 0)} failed, "
                f"{counts.get('succeeded', 0)} done; watcher {self.watcher.mode}"
            )
            self._last_status = now


def run_service(settings: Settings) -> int:
    return Service(settings).run()
