"""An outbox: deliveries to a remote service, retried with backoff, off the caller's thread.

Why: telling Immich or PhotoPrism about a published still must never hold up the job queue.
A server that is down, slow or refusing the key is a problem of that delivery, not of the
restoration, which is already on disk. So `submit` only records the delivery and returns;
one background thread per outbox tries it, and on a retryable error tries again after
`backoff * 2**(attempt-1)` seconds (capped at `max_backoff`), up to `max_attempts` tries,
then logs that it gave up, with the last error. An error that cannot heal by waiting (a
request the server calls malformed, no library that holds the path) is given up at once.

Persistence: deliveries are plain JSON-able records (`Delivery.to_record`), and every change
goes through an `OutboxStore` (`save` on submit and on each reschedule, `delete` when done or
given up), so a store that writes them to the job database makes them survive a restart:
`Outbox.start` reloads what the store holds. `MemoryOutboxStore` keeps them in memory only.
`key` coalesces: a delivery submitted while another with the same key is still waiting (and
not yet running) is dropped, so a burst of jobs in one folder asks for one rescan, not 500.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)


class DeliveryError(Exception):
    """A delivery failed; `retry` says whether trying again later can help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(slots=True)
class Delivery:
    kind: str
    payload: dict[str, Any]
    key: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    due: float = 0.0
    """Wall-clock time (time.time()) of the next try: survives a restart, unlike monotonic."""
    last_error: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "payload": self.payload,
            "attempts": self.attempts,
            "due": self.due,
            "last_error": self.last_error,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Delivery:
        return cls(
            kind=str(record["kind"]),
            payload=dict(record["payload"]),
            key=record.get("key"),
            id=str(record["id"]),
            attempts=int(record.get("attempts", 0)),
            due=float(record.get("due", 0.0)),
            last_error=record.get("last_error"),
        )


class OutboxStore(Protocol):
    """Where waiting deliveries are kept; see the module doc."""

    def save(self, delivery: Delivery) -> None: ...
    def delete(self, delivery_id: str) -> None: ...
    def load(self) -> list[Delivery]: ...


class MemoryOutboxStore:
    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def save(self, delivery: Delivery) -> None:
        with self._lock:
            self._records[delivery.id] = delivery.to_record()

    def delete(self, delivery_id: str) -> None:
        with self._lock:
            self._records.pop(delivery_id, None)

    def load(self) -> list[Delivery]:
        with self._lock:
            return [Delivery.from_record(r) for r in self._records.values()]


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th failed try (1-based): base, 2 base, 4 base..."""
    return min(cap, base * 2 ** max(0, attempt - 1))


Handler = Callable[[dict[str, Any]], None]


class Outbox:
    """Deliveries of a few kinds, each run by its handler on one background thread."""

    def __init__(
        self,
        name: str,
        handlers: Mapping[str, Handler],
        *,
        max_attempts: int,
        backoff: float,
        max_backoff: float,
        store: OutboxStore | None = None,
    ) -> None:
        self.name = name
        self._handlers = dict(handlers)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.store: OutboxStore = store or MemoryOutboxStore()
        self._waiting: dict[str, Delivery] = {}
        self._running: Delivery | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Reload what the store kept (a restart) and start the thread; idempotent."""
        with self._cond:
            if self._thread is not None:
                return
            for delivery in self.store.load():
                if delivery.kind in self._handlers:
                    self._waiting[delivery.id] = delivery
            self._thread = threading.Thread(target=self._loop, name=f"lmd-{self.name}", daemon=True)
            self._thread.start()

    def submit(
        self, kind: str, payload: dict[str, Any], *, key: str | None = None
    ) -> Delivery | None:
        """Record a delivery and return at once (None when coalesced into a waiting one)."""
        if kind not in self._handlers:
            raise ValueError(f"{self.name}: no handler for {kind!r}")
        with self._cond:
            if self._closed:
                log.warning("delivery not queued: lmd is stopping", outbox=self.name, kind=kind)
                return None
            if key is not None and any(d.key == key for d in self._waiting.values()):
                return None
            delivery = Delivery(kind=kind, payload=payload, key=key, due=time.time())
            self.store.save(delivery)
            self._waiting[delivery.id] = delivery
            self._cond.notify_all()
        self.start()
        return delivery

    def pending(self) -> list[Delivery]:
        with self._cond:
            running = [self._running] if self._running is not None else []
            return running + sorted(self._waiting.values(), key=lambda d: d.due)

    def _next(self) -> Delivery | None:
        """Block until a delivery is due (or the outbox closes); take it off the waiting set."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if self._waiting:
                    first = min(self._waiting.values(), key=lambda d: d.due)
                    wait = first.due - time.time()
                    if wait <= 0:
                        del self._waiting[first.id]
                        self._running = first
                        return first
                    self._cond.wait(min(wait, 60.0))
                else:
                    self._cond.notify_all()  # wake wait_idle
                    self._cond.wait()

    def _loop(self) -> None:
        while (delivery := self._next()) is not None:
            self._attempt(delivery)
            with self._cond:
                self._running = None
                self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> None:
        delivery.attempts += 1
        fields = {"outbox": self.name, "kind": delivery.kind, "attempt": delivery.attempts}
        try:
            self._handlers[delivery.kind](delivery.payload)
        except Exception as exc:  # a handler bug must not end the thread either
            retry = exc.retry if isinstance(exc, DeliveryError) else False
            message = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            delivery.last_error = message
            if retry and delivery.attempts < self.max_attempts:
                delay = backoff_delay(delivery.attempts, self.backoff, self.max_backoff)
                delivery.due = time.time() + delay
                log.warning(
                    "delivery failed, will retry", error=message, retry_in_s=delay, **fields
                )
                with self._cond:
                    if not self._closed:
                        self._waiting[delivery.id] = delivery
                self.store.save(delivery)
                return
            self.store.delete(delivery.id)
            log.error(
                "delivery given up",
                error=message,
                payload=delivery.payload,
                reason="not retryable" if not retry else "attempts exhausted",
                **fields,
            )
            return
        self.store.delete(delivery.id)
        log.info("delivered", **fields)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing waits or runs (tests; a polite stop)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._running is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = 0.0) -> None:
        """Stop the thread (after up to `timeout` s for the current try). What still waits
        stays in the store for the next start."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
