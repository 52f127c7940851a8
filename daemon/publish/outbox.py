"""An outbox: deliveries to a remote service, kept in a store, retried with backoff, off the
caller's thread.

Why: telling Immich or PhotoPrism about a published still must never hold up the job queue,
and must not be forgotten when lmd restarts. A server that is down, slow or refusing the key is
a problem of that delivery, not of the restoration, which is already on disk. So `submit` only
records the delivery in the store and returns; one background thread per outbox claims the
earliest due delivery of its publisher, tries it, and on a retryable error gives it back due
again after `backoff * 2**(attempt-1)` seconds (capped at `max_backoff`), up to
`max_attempts` tries, then marks it failed with the last error (`lmd status` shows it). An
error that cannot heal by waiting (a request the server calls malformed, no library that holds
the path) is given up at once.

The store is the job database in the daemon (`daemon.store.outbox`: a `publish_outbox` row per
delivery, claimed under a lease, so a restart resumes what waited, the backoff's due time
persists, and two workers sharing a database never deliver one entry twice), or
`MemoryOutboxStore`, the same operations in memory, where no database is at hand. A failing
delivery never blocks the others: it waits out its backoff in the store while the claim takes
the next due one. `key` coalesces: a delivery submitted while another with the same key still
waits (not yet claimed) is dropped, so a burst of jobs in one folder asks for one rescan.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from daemon.store.outbox import OutboxEntry, OutboxState

log = structlog.get_logger(__name__)

#: A claim lasts this long past the handler's own timeouts; a worker that died mid-try leaves
#: its delivery to be taken again after it.
LEASE_SECONDS = 900.0
#: How often an idle outbox looks for deliveries another process added to a shared store.
POLL_SECONDS = 15.0
#: On an error of the store itself (a database briefly locked or unreachable).
STORE_ERROR_PAUSE_SECONDS = 5.0
#: Delivered entries are forgotten after this long (failed ones stay for a person to see).
DELIVERED_KEPT_SECONDS = 30 * 24 * 3600.0


class DeliveryError(Exception):
    """A delivery failed; `retry` says whether trying again later can help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class OutboxStore(Protocol):
    """Where deliveries are kept: the job store's outbox operations (see the module doc)."""

    def add_outbox(
        self, publisher: str, kind: str, payload: Mapping[str, Any], *,
        job_id: int | None = None, coalesce_key: str | None = None,
    ) -> OutboxEntry | None: ...
    def claim_outbox(
        self, publishers: Iterable[str], owner: str, lease_seconds: float
    ) -> OutboxEntry | None: ...
    def outbox_delivered(self, entry_id: str, owner: str) -> bool: ...
    def outbox_retry_later(
        self, entry_id: str, owner: str, error: str, next_attempt_at: datetime
    ) -> bool: ...
    def outbox_give_up(self, entry_id: str, owner: str, error: str) -> bool: ...
    def next_outbox_due(self, publishers: Iterable[str]) -> datetime | None: ...
    def list_outbox(
        self, state: OutboxState | str | None = None, *,
        publishers: Iterable[str] | None = None, limit: int | None = 100,
    ) -> list[OutboxEntry]: ...
    def prune_outbox(self, older_than: datetime) -> int: ...


class MemoryOutboxStore:
    """`OutboxStore` in memory (lost with the process): for `lmd` commands without a job
    database and for tests. Same claims and coalescing as the database."""

    def __init__(self) -> None:
        self._entries: dict[str, OutboxEntry] = {}
        self._claims: dict[str, tuple[str, datetime]] = {}
        self._lock = threading.Lock()

    def _unclaimed(self, entry_id: str, now: datetime) -> bool:
        claim = self._claims.get(entry_id)
        return claim is None or claim[1] < now

    def add_outbox(
        self, publisher: str, kind: str, payload: Mapping[str, Any], *,
        job_id: int | None = None, coalesce_key: str | None = None,
    ) -> OutboxEntry | None:
        now = datetime.now(UTC)
        with self._lock:
            if coalesce_key is not None and any(
                e.publisher == publisher and e.coalesce_key == coalesce_key
                and e.state == OutboxState.PENDING and self._unclaimed(e.id, now)
                for e in self._entries.values()
            ):
                return None
            entry = OutboxEntry(
                id=uuid.uuid4().hex, job_id=job_id, publisher=publisher, kind=kind,
                coalesce_key=coalesce_key, payload=dict(payload), state=OutboxState.PENDING,
                attempts=0, next_attempt_at=now, last_error=None, claim_owner=None,
                created_at=now, updated_at=now,
            )
            self._entries[entry.id] = entry
            return entry

    def claim_outbox(
        self, publishers: Iterable[str], owner: str, lease_seconds: float
    ) -> OutboxEntry | None:
        now = datetime.now(UTC)
        names = set(publishers)
        with self._lock:
            due = [
                e for e in self._entries.values()
                if e.publisher in names and e.state == OutboxState.PENDING
                and e.next_attempt_at <= now and self._unclaimed(e.id, now)
            ]
            if not due:
                return None
            first = min(due, key=lambda e: (e.next_attempt_at, e.created_at, e.id))
            self._claims[first.id] = (owner, now + timedelta(seconds=lease_seconds))
            taken = _replace(first, attempts=first.attempts + 1, claim_owner=owner)
            self._entries[first.id] = taken
            return taken

    def _finish(self, entry_id: str, owner: str, **values: Any) -> bool:
        with self._lock:
            entry = self._entries.get(entry_id)
            claim = self._claims.get(entry_id)
            if entry is None or claim is None or claim[0] != owner:
                return False
            del self._claims[entry_id]
            self._entries[entry_id] = _replace(entry, claim_owner=None, **values)
            return True

    def outbox_delivered(self, entry_id: str, owner: str) -> bool:
        return self._finish(entry_id, owner, state=OutboxState.DELIVERED)

    def outbox_retry_later(
        self, entry_id: str, owner: str, error: str, next_attempt_at: datetime
    ) -> bool:
        return self._finish(entry_id, owner, last_error=error, next_attempt_at=next_attempt_at)

    def outbox_give_up(self, entry_id: str, owner: str, error: str) -> bool:
        return self._finish(entry_id, owner, state=OutboxState.FAILED, last_error=error)

    def next_outbox_due(self, publishers: Iterable[str]) -> datetime | None:
        names = set(publishers)
        with self._lock:
            times = [
                max(e.next_attempt_at, self._claims[e.id][1]) if e.id in self._claims
                else e.next_attempt_at
                for e in self._entries.values()
                if e.publisher in names and e.state == OutboxState.PENDING
            ]
        return min(times, default=None)

    def list_outbox(
        self, state: OutboxState | str | None = None, *,
        publishers: Iterable[str] | None = None, limit: int | None = 100,
    ) -> list[OutboxEntry]:
        names = None if publishers is None else set(publishers)
        with self._lock:
            out = sorted(
                (
                    e for e in self._entries.values()
                    if (state is None or e.state == OutboxState(state))
                    and (names is None or e.publisher in names)
                ),
                key=lambda e: (e.next_attempt_at, e.created_at, e.id),
            )
        return out if limit is None else out[:limit]

    def prune_outbox(self, older_than: datetime) -> int:
        with self._lock:
            gone = [
                e.id for e in self._entries.values()
                if e.state == OutboxState.DELIVERED and e.updated_at < older_than
            ]
            for entry_id in gone:
                del self._entries[entry_id]
        return len(gone)


def _replace(entry: OutboxEntry, **values: Any) -> OutboxEntry:
    fields = {name: getattr(entry, name) for name in OutboxEntry.__slots__}
    fields.update(values, updated_at=datetime.now(UTC))
    return OutboxEntry(**fields)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait after the `attempt`-th failed try (1-based): base, 2 base, 4 base..."""
    return min(cap, base * 2 ** max(0, attempt - 1))


Handler = Callable[[dict[str, Any]], None]


class Outbox:
    """The deliveries of one publisher (`name`), each kind run by its handler on one
    background thread."""

    def __init__(
        self,
        name: str,
        handlers: Mapping[str, Handler],
        *,
        max_attempts: int,
        backoff: float,
        max_backoff: float,
        store: OutboxStore | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.name = name
        self._handlers = dict(handlers)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lease_seconds = lease_seconds
        self.store: OutboxStore = store if store is not None else MemoryOutboxStore()
        self.owner = f"{name}-{uuid.uuid4().hex[:16]}"
        self._cond = threading.Condition()
        self._wake = False
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread, which resumes what the store kept (a restart), and forget what
        was delivered more than `DELIVERED_KEPT_SECONDS` ago; idempotent."""
        with self._cond:
            if self._thread is not None or self._closed:
                return
            try:
                old = datetime.now(UTC) - timedelta(seconds=DELIVERED_KEPT_SECONDS)
                self.store.prune_outbox(old)
            except Exception as exc:  # housekeeping: never a reason not to deliver
                log.warning("outbox prune failed", outbox=self.name, error=str(exc))
            self._thread = threading.Thread(target=self._loop, name=f"lmd-{self.name}", daemon=True)
            self._thread.start()

    def submit(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        job_id: int | None = None,
    ) -> OutboxEntry | None:
        """Record a delivery and return at once (None when coalesced into a waiting one)."""
        if kind not in self._handlers:
            raise ValueError(f"{self.name}: no handler for {kind!r}")
        with self._cond:
            if self._closed:
                log.warning("delivery not queued: lmd is stopping", outbox=self.name, kind=kind)
                return None
        entry = self.store.add_outbox(self.name, kind, payload, job_id=job_id, coalesce_key=key)
        self.start()
        with self._cond:
            self._wake = True
            self._cond.notify_all()
        return entry

    def pending(self) -> list[OutboxEntry]:
        """Deliveries of this publisher still to be made, earliest due first."""
        return self.store.list_outbox(OutboxState.PENDING, publishers=[self.name], limit=None)

    def _pause(self, seconds: float) -> None:
        """Wait up to `seconds`, or until a submit or close wakes the thread."""
        with self._cond:
            if not self._wake and not self._closed:
                self._cond.wait(max(0.0, seconds))
            self._wake = False

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                self._busy = True
            try:
                entry = self.store.claim_outbox([self.name], self.owner, self.lease_seconds)
                if entry is not None:
                    self._attempt(entry)
                    continue
                due = self.store.next_outbox_due([self.name])
            except Exception as exc:  # the store failing must not end the thread
                log.warning("outbox store error", outbox=self.name, error=str(exc))
                self._pause(STORE_ERROR_PAUSE_SECONDS)
                continue
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            wait = POLL_SECONDS
            if due is not None:
                wait = min(wait, (due - datetime.now(UTC)).total_seconds())
            self._pause(wait)

    def _attempt(self, entry: OutboxEntry) -> None:
        fields = {"outbox": self.name, "kind": entry.kind, "attempt": entry.attempts}
        handler = self._handlers.get(entry.kind)
        try:
            if handler is None:
                raise DeliveryError(f"no handler for {entry.kind!r}", retry=False)
            handler(dict(entry.payload))
        except Exception as exc:  # a handler bug must not end the thread either
            retry = exc.retry if isinstance(exc, DeliveryError) else False
            message = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            if retry and entry.attempts < self.max_attempts:
                delay = backoff_delay(entry.attempts, self.backoff, self.max_backoff)
                due = datetime.now(UTC) + timedelta(seconds=delay)
                self._settle(self.store.outbox_retry_later(entry.id, self.owner, message, due))
                log.warning(
                    "delivery failed, will retry", error=message, retry_in_s=delay, **fields
                )
                return
            self._settle(self.store.outbox_give_up(entry.id, self.owner, message))
            log.error(
                "delivery given up",
                error=message,
                payload=entry.payload,
                reason="not retryable" if not retry else "attempts exhausted",
                **fields,
            )
            return
        self._settle(self.store.outbox_delivered(entry.id, self.owner))
        log.info("delivered", **fields)

    def _settle(self, held: bool) -> None:
        if not held:  # the lease ran out mid-try: another worker may have taken it since
            log.warning("delivery claim lost before its result was recorded", outbox=self.name)

    def wait_idle(self, timeout: float) -> bool:
        """True once no delivery of this publisher is pending (tests; a polite stop). Returns
        False at once when what still waits is not due before `timeout` runs out (a delivery
        backing off for minutes): a short-lived command does not sit out its backoff."""
        deadline = time.monotonic() + timeout
        last_due = datetime.now(UTC) + timedelta(seconds=timeout)
        while True:
            with self._cond:
                busy = self._busy
            waiting = self.pending()
            if not busy and not waiting:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or (not busy and all(e.next_attempt_at > last_due for e in waiting)):
                return False
            with self._cond:
                self._cond.wait(min(left, 0.05))

    def close(self, timeout: float = 0.0) -> None:
        """Stop the thread (after up to `timeout` s for the current try). What still waits
        stays in the store for the next start."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
