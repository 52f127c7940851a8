"""The outbox kept in the job database (`publish_outbox`): deliveries survive a restart, their
backoff too, a failing delivery does not hold up the others, and two workers sharing the
database never deliver one entry twice. Runs on SQLite and on the throwaway PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.publish.outbox import DeliveryError, Outbox
from daemon.store import JobStore, open_store
from daemon.store.outbox import OutboxState


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lmd.sqlite3'}"
    return request.getfixturevalue("postgres_url")


def outbox(store: JobStore, handler: Any, **kw: Any) -> Outbox:
    options: dict[str, Any] = {"max_attempts": 3, "backoff": 3600.0, "max_backoff": 3600.0}
    return Outbox("immich", {"immich.upload": handler}, store=store, **{**options, **kw})


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_delivery_survives_the_process_and_is_made_after_reopening(url: str) -> None:
    with open_store(url) as first:  # the process ends with the delivery enqueued
        first.add_outbox("immich", "immich.upload", {"output": "/lib/a_lmd.jpg"}, job_id=None)
    delivered: list[dict[str, Any]] = []
    with open_store(url) as second:
        (waiting,) = second.list_outbox(OutboxState.PENDING)
        assert waiting.payload == {"output": "/lib/a_lmd.jpg"} and waiting.attempts == 0
        box = outbox(second, delivered.append)
        box.start()
        assert box.wait_idle(20)
        box.close(5)
        assert delivered == [{"output": "/lib/a_lmd.jpg"}]
        (done,) = second.list_outbox()
        assert done.state == OutboxState.DELIVERED and done.attempts == 1
        assert second.outbox_counts() == {"immich": {"pending": 0, "delivered": 1, "failed": 0}}


def test_a_delivery_cut_short_by_a_crash_is_made_once_its_lease_ran_out(url: str) -> None:
    release = threading.Event()
    tried: list[dict[str, Any]] = []

    def hang(payload: dict[str, Any]) -> None:  # the process dies inside the HTTP call
        tried.append(payload)
        release.wait(20)
        raise DeliveryError("connection reset")

    delivered: list[dict[str, Any]] = []
    with open_store(url) as first, open_store(url) as second:
        crashed = outbox(first, hang, lease_seconds=0.3)
        crashed.submit("immich.upload", {"n": 1})
        wait_for(lambda: tried == [{"n": 1}])
        crashed.close()  # its thread is left hanging, as a killed process leaves its claim
        box = outbox(second, delivered.append)
        box.start()
        wait_for(lambda: delivered == [{"n": 1}])
        box.close(5)
        release.set()  # the old try ends: its result is refused, the delivery stays done
        crashed.close(5)
        (done,) = second.list_outbox()
        assert done.state == OutboxState.DELIVERED and done.attempts == 2


def test_the_backoff_survives_a_restart(url: str) -> None:
    def refuse(payload: dict[str, Any]) -> None:
        raise DeliveryError("503 Service Unavailable")

    with open_store(url) as first:
        box = outbox(first, refuse, backoff=3600.0)
        box.submit("immich.upload", {"n": 1})
        wait_for(lambda: first.list_outbox()[0].last_error is not None)
        box.close(5)
    with open_store(url) as second:
        (kept,) = second.list_outbox(OutboxState.PENDING)
        assert kept.attempts == 1 and kept.last_error == "503 Service Unavailable"
        # due an hour after the failed try (the first backoff), not at once after the restart
        left = (kept.next_attempt_at - datetime.now(UTC)).total_seconds()
        assert 3500 < left <= 3600
        assert second.claim_outbox(["immich"], "after-restart", 60) is None


def test_a_failing_delivery_does_not_hold_up_the_next(url: str) -> None:
    delivered: list[int] = []

    def handler(payload: dict[str, Any]) -> None:
        if payload["n"] == 1:
            raise DeliveryError("server says 503")
        delivered.append(payload["n"])

    with open_store(url) as store:
        box = outbox(store, handler)
        box.submit("immich.upload", {"n": 1})
        box.submit("immich.upload", {"n": 2})
        box.start()
        wait_for(lambda: delivered == [2])
        box.close(5)
        states = {e.payload["n"]: (e.state, e.attempts) for e in store.list_outbox()}
        assert states == {1: (OutboxState.PENDING, 1), 2: (OutboxState.DELIVERED, 1)}


def test_exhausted_and_unretryable_deliveries_are_kept_as_failed(url: str) -> None:
    def handler(payload: dict[str, Any]) -> None:
        raise DeliveryError(f"no library holds {payload['n']}", retry=payload["n"] == 2)

    with open_store(url) as store:
        box = outbox(store, handler, max_attempts=2, backoff=0.01, max_backoff=0.01)
        box.submit("immich.upload", {"n": 1})
        box.submit("immich.upload", {"n": 2})
        box.start()
        assert box.wait_idle(20)
        box.close(5)
        failed = {e.payload["n"]: e.attempts for e in store.list_outbox(OutboxState.FAILED)}
        assert failed == {1: 1, 2: 2}
        assert store.outbox_counts()["immich"]["failed"] == 2


def test_two_workers_never_deliver_one_entry_twice(url: str) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def handler(payload: dict[str, Any]) -> None:
        with lock:
            calls.append(payload["n"])
        time.sleep(0.002)  # stands for the HTTP call: lets the other worker claim meanwhile

    with open_store(url) as a, open_store(url) as b:
        for n in range(40):
            a.add_outbox("immich", "immich.upload", {"n": n})
        boxes = [outbox(a, handler), outbox(b, handler)]
        for box in boxes:
            box.start()
        assert all(box.wait_idle(30) for box in boxes)
        for box in boxes:
            box.close(5)
        assert sorted(calls) == list(range(40))
        assert a.outbox_counts()["immich"]["delivered"] == 40


def test_a_claim_is_exclusive_until_its_lease_runs_out(url: str) -> None:
    with open_store(url) as a, open_store(url) as b:
        entry = a.add_outbox("photoprism", "photoprism.index", {"folder": "2026"})
        assert entry is not None
        assert a.add_outbox(
            "photoprism", "photoprism.index", {"folder": "x"}, coalesce_key="index:x"
        ) is not None
        assert a.add_outbox(
            "photoprism", "photoprism.index", {"folder": "x"}, coalesce_key="index:x"
        ) is None  # coalesced into the waiting one
        first = a.claim_outbox(["photoprism"], "worker-a", lease_seconds=0.0)
        assert first is not None and first.id == entry.id
        # worker-a's lease has run out (0 s): worker-b takes the entry, worker-a's result is
        # refused, so the delivery is recorded once
        taken = b.claim_outbox(["photoprism"], "worker-b", lease_seconds=600.0)
        assert taken is not None and taken.id == entry.id and taken.attempts == 2
        assert not a.outbox_delivered(entry.id, "worker-a")
        other = a.claim_outbox(["photoprism"], "worker-a", lease_seconds=600.0)
        assert other is not None and other.id != entry.id  # the held one is skipped
        assert a.claim_outbox(["photoprism"], "worker-a", lease_seconds=600.0) is None
        assert b.outbox_delivered(entry.id, "worker-b")
        later = datetime.now(UTC) + timedelta(hours=1)
        assert a.outbox_retry_later(other.id, "worker-a", "timed out", later)
        assert a.next_outbox_due(["photoprism"]) == later


def test_waiting_for_idle_does_not_sit_out_a_long_backoff(url: str) -> None:
    def refuse(payload: dict[str, Any]) -> None:
        raise DeliveryError("503 Service Unavailable")

    with open_store(url) as store:
        box = outbox(store, refuse, backoff=3600.0)
        box.submit("immich.upload", {"n": 1})
        wait_for(lambda: store.list_outbox()[0].last_error is not None)
        started = time.monotonic()
        assert not box.wait_idle(60)  # due in an hour: not idle, and no use waiting
        assert time.monotonic() - started < 30
        box.close(5)


def test_old_deliveries_are_forgotten_failed_ones_kept(url: str) -> None:
    with open_store(url) as store:
        for n, verdict in enumerate(("delivered", "delivered", "failed", None)):
            entry = store.add_outbox("immich", "immich.upload", {"n": n})
            assert entry is not None
            if verdict is None:
                continue
            claimed = store.claim_outbox(["immich"], "w", 60)
            assert claimed is not None and claimed.id == entry.id
            if verdict == "delivered":
                assert store.outbox_delivered(entry.id, "w")
            else:
                assert store.outbox_give_up(entry.id, "w", "401")
        assert store.prune_outbox(datetime.now(UTC) - timedelta(days=1)) == 0  # all recent
        assert store.prune_outbox(datetime.now(UTC) + timedelta(seconds=1)) == 2
        left = {e.payload["n"]: e.state for e in store.list_outbox()}
        assert left == {2: OutboxState.FAILED, 3: OutboxState.PENDING}
