"""Serving the review page: `lmd review serve` (in the foreground) and `[review] serve = true`
in `lmd run` (on a thread of the daemon), both through uvicorn.

The bind is checked before anything starts (`security.check_bind`: a non-loopback address
needs `[review] token`), and lmd binds the socket itself and hands it to uvicorn, so that an
address it cannot listen on (a port in use) is one `ServeRefused` that says why, instead of
uvicorn's own log line and exit status 3. uvicorn's own access log is off: requests carry the
token in a cookie and lmd logs what matters (decisions) itself.
"""

from __future__ import annotations

import errno
import socket
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

__all__ = ["ReviewServer", "ServeRefused", "listen", "serve_forever"]


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0: any free one), not yet listening (uvicorn's
    server listens on it); ServeRefused with the reason when the address cannot be had."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            why = (f"port {port} is in use (another lmd review serve, or lmd run with [review]"
                   " serve = true?); choose another with --port or [review] port")
        raise ServeRefused(f"the review page cannot listen on {host}:{port}: {why}") from None
    return sock


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
        self._socket: socket.socket | None = None  # bound by `start` or `run`

    @property
    def port(self) -> int:
        if self._socket is not None and self._socket.fileno() != -1:
            return int(self._socket.getsockname()[1])
        return int(self.server.config.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self, timeout: float = 30.0) -> ReviewServer:
        """Serve on a thread of its own; returns once the socket listens."""
        sockets = [self._bind()]
        self._thread = threading.Thread(
            target=self.server.run, args=(sockets,), name="review-page", daemon=True
        )
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

    def run(self) -> None:
        """Serve in the foreground until Ctrl-C or SIGTERM (uvicorn handles both on the main
        thread)."""
        sockets = [self._bind()]
        log.info("review_page_serving", url=self.url)
        self.server.run(sockets)

    def _bind(self) -> socket.socket:
        self._socket = listen(self.host, int(self.server.config.port))
        return self._socket

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()  # uvicorn closes it on shutdown; not when it never started
        self.service.close()


def serve_forever(settings: Any, *, host: str | None = None, port: int | None = None) -> None:
    """`lmd review serve`: the page in the foreground until Ctrl-C or SIGTERM."""
    check_bind(host or settings.review.host, _token(settings))
    store = open_store(settings.database_url)
    try:
        server = ReviewServer(settings, store, host=host, port=port)
        try:
            server.run()
        finally:
            server.service.close()
    finally:
        store.close()
