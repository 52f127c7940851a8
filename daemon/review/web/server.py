"""Serving the review page: `lmd review serve` (in the foreground) and `[review] serve = true`
in `lmd run` (on a thread of the daemon), both through uvicorn.

The bind is checked before anything starts (`security.check_bind`: a non-loopback address
needs `[review] token`). uvicorn's own access log is off: requests carry the token in a cookie
and lmd logs what matters (decisions) itself.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
import uvicorn

from daemon.review.decisions import ReviewService, open_review_service
from daemon.review.web.app import build_app
from daemon.review.web.security import Guard, ServeRefused, check_bind, is_loopback
from daemon.store import JobStore, open_store

log = structlog.get_logger(__name__)

__all__ = ["ReviewServer", "ServeRefused", "serve_forever"]


def _token(settings: Any) -> str | None:
    token = settings.review.token
    return None if token is None else token.get_secret_value()


class ReviewServer:
    """The page on `host:port` (port 0: any free port, see `port` once started)."""

    def __init__(
        self, settings: Any, store: JobStore, *, host: str | None = None,
        port: int | None = None, service: ReviewService | None = None,
    ) -> None:
        self.host = host or settings.review.host
        token = _token(settings)
        check_bind(self.host, token)
        self.service = service or open_review_service(settings, store)
        self.guard = Guard(token, loopback_only=is_loopback(self.host))
        app = build_app(settings, store, self.service, self.guard)
        config = uvicorn.Config(
            app, host=self.host, port=settings.review.port if port is None else port,
            log_level="warning", access_log=False, lifespan="off", server_header=False,
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        for server in servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> ReviewServer:
        """Serve on a thread of its own; returns once the socket listens."""
        self._thread = threading.Thread(target=self.server.run, name="review-page", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise ServeRefused(f"the review page could not listen on {self.host}")
            if time.monotonic() > deadline:
                raise ServeRefused("the review page did not start in time")
            time.sleep(0.02)
        log.info("review_page_serving", url=self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.service.close()


def serve_forever(settings: Any, *, host: str | None = None, port: int | None = None) -> None:
    """`lmd review serve`: the page in the foreground until Ctrl-C or SIGTERM."""
    check_bind(host or settings.review.host, _token(settings))
    store = open_store(settings.database_url)
    try:
        server = ReviewServer(settings, store, host=host, port=port)
        log.info("review_page_serving", url=server.url)
        server.server.run()  # uvicorn handles SIGINT/SIGTERM on the main thread
        server.service.close()
    finally:
        store.close()
