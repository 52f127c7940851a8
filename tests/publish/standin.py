"""The machinery of the loopback stand-in servers: a threaded HTTP server on 127.0.0.1 that
records every request and can be told to fail or to hold its next answers. Each stand-in
(Immich, PhotoPrism) implements `_answer` in the shapes of its service's API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    status: int = 0


class LoopbackStandIn:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._failures: list[tuple[str, str, int]] = []
        self._holds: list[list] = []  # [method, path, event, matching requests to let by]
        self._lock = threading.Lock()
        self.released = threading.Event()
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, path: str, status: int, times: int = 1) -> None:
        """Answer the next `times` matching requests with `status` (service's error shape)."""
        with self._lock:
            self._failures.extend([(method, path, status)] * times)

    def hold(self, method: str, path: str, skip: int = 0) -> threading.Event:
        """Hold the answer to the next matching request (after `skip` more; after it took
        effect) until the returned event is set or the stand-in stops: a slow server, or
        a lost answer."""
        event = threading.Event()
        with self._lock:
            self._holds.append([method, path, event, skip])
        return event

    def calls(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- serving -------------------------------------------------------------------------

    def _scripted_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for i, (m, p, status) in enumerate(self._failures):
                if m == method and p == path:
                    del self._failures[i]
                    return status
        return None

    def _hold_for(self, method: str, path: str) -> threading.Event | None:
        with self._lock:
            for i, hold in enumerate(self._holds):
                if hold[0] == method and hold[1] == path:
                    if hold[3] > 0:
                        hold[3] -= 1
                        return None
                    del self._holds[i]
                    return hold[2]
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()})
                standin.requests.append(rec)
                status, answer = standin._answer(rec, body, self.headers.get("Content-Type", ""))
                rec.status = status
                hold = standin._hold_for(method, self.path)
                if hold is not None:
                    while not (hold.is_set() or standin.released.is_set()):
                        hold.wait(0.05)
                payload = b"" if answer is None else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    if answer is not None:
                        self.send_header("Content-Type", "application/json; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting (its timeout): nothing to answer

        return Handler

    def _answer(self, rec: Recorded, body: bytes, content_type: str) -> tuple[int, Any]:
        raise NotImplementedError

    def _scripted(self, rec: Recorded) -> int | None:
        return self._scripted_failure(rec.method, rec.path)


def read_json(rec: Recorded, body: bytes) -> bool:
    """Parse a JSON body into `rec.json`; False when it is not JSON."""
    try:
        rec.json = json.loads(body or b"null")
    except ValueError:
        return False
    return True
