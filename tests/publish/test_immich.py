"""Immich publishing against the loopback stand-in built from Immich's OpenAPI document:
upload + stack with the restored still as cover, library rescan, and errors (401, 404,
timeouts, 5xx) retried with backoff off the caller's thread."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

import daemon.publish.immich as immich_module
from daemon.publish.immich import ImmichPublisher, library_holding
from daemon.publish.outbox import MemoryOutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.settings import ImmichSettings
from tests.publish.immich_standin import ImmichStandIn

KEY = "secret-key"


@pytest.fixture
def standin() -> Iterator[ImmichStandIn]:
    with ImmichStandIn(api_key=KEY) as server:
        yield server


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    (root / "2026").mkdir(parents=True)
    (root / "2026" / "IMG_0001.HEIC").write_bytes(b"original key photo bytes")
    (root / "2026" / "IMG_0001_lmd.HEIC").write_bytes(b"restored still bytes")
    return root


def outcome(library: Path, job_id: int = 1, name: str = "IMG_0001") -> JobOutcome:
    return JobOutcome(
        job_id=job_id,
        asset=f"2026/{name}.HEIC",
        original=library / "2026" / f"{name}.HEIC",
        output=library / "2026" / f"{name}_lmd.HEIC",
        mode="sidecar-beside",
    )


def settings(url: str, **kw: object) -> ImmichSettings:
    base: dict[str, object] = {
        "url": url,
        "api_key": KEY,
        "timeout_seconds": 2.0,
        "max_attempts": 4,
        "backoff_seconds": 0.01,  # 0.01, 0.02, 0.04 s: retries, not waiting, are under test
        "max_backoff_seconds": 0.05,
    }
    return ImmichSettings(**{**base, **kw})  # type: ignore[arg-type]


def publisher(
    url: str, library: Path, store: MemoryOutboxStore | None = None, **kw: object
) -> ImmichPublisher:
    return ImmichPublisher(settings(url, **kw), library_root=library, store=store)


@pytest.mark.parametrize("spec", ["v1", "v2"])
def test_upload_stacks_the_restored_still_over_its_original(library: Path, spec: str) -> None:
    with ImmichStandIn(api_key=KEY, spec=spec) as standin:
        original = standin.add_asset(b"original key photo bytes", "upload/IMG_0001.HEIC")
        pub = publisher(standin.url, library)
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
        pub.close()

        (upload,) = standin.calls("POST", "/api/assets")
        assert upload.status == 201, upload
        assert upload.files["assetData"] == ("IMG_0001_lmd.HEIC", b"restored still bytes")
        assert upload.form["deviceId"] == "lmd" and upload.form["deviceAssetId"]
        assert upload.form["fileCreatedAt"].endswith("Z")
        sha1 = hashlib.sha1(b"restored still bytes").hexdigest()
        assert upload.headers["x-immich-checksum"] == sha1
        (stack_call,) = standin.calls("POST", "/api/stacks")
        uploaded = next(a for a in standin.assets.values() if a.id != original.id)
        assert stack_call.json == {"assetIds": [uploaded.id, original.id]}
        assert standin.stacks[0]["primaryAssetId"] == uploaded.id


def test_an_external_library_original_is_found_by_its_path(library: Path) -> None:
    with ImmichStandIn(api_key=KEY) as standin:
        # External library assets are keyed by path; the bytes Immich hashed differ here.
        original = standin.add_asset(b"other bytes", "/mnt/photos/2026/IMG_0001.HEIC")
        pub = publisher(standin.url, library, library_path="/mnt/photos")
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
        pub.close()
        searches = [c.json for c in standin.calls("POST", "/api/search/metadata")]
        assert searches[-1] == {"originalPath": "/mnt/photos/2026/IMG_0001.HEIC"}
        assert standin.stacks and standin.stacks[0]["assets"][1]["id"] == original.id


def test_without_the_original_in_immich_the_still_is_uploaded_unstacked(
    standin: ImmichStandIn, library: Path
) -> None:
    pub = publisher(standin.url, library)
    with capture_logs() as logs:
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert len(standin.calls("POST", "/api/assets")) == 1
    assert not standin.calls("POST", "/api/stacks")
    assert any("without a stack" in e["event"] for e in logs)


def test_rescan_scans_the_library_that_holds_the_output(
    standin: ImmichStandIn, library: Path
) -> None:
    standin.add_library("other", ["/mnt/photos2"])
    standin.add_library("photos", ["/mnt/photos"])
    nested = standin.add_library("this year", ["/mnt/photos/2026/"])
    pub = publisher(standin.url, library, mode="rescan", library_path="/mnt/photos")
    pub.publish(outcome(library))
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert standin.scanned == [nested["id"]]
    assert not standin.calls("POST", "/api/assets")


def test_a_burst_of_jobs_in_one_folder_asks_for_one_more_rescan(
    standin: ImmichStandIn, library: Path
) -> None:
    lib = standin.add_library("photos", [str(library)])
    held = standin.hold("GET", "/api/libraries")
    pub = publisher(standin.url, library, mode="rescan")
    pub.publish(outcome(library, 1))
    # The first rescan is in flight (held); the next five coalesce into one waiting rescan.
    deadline = time.monotonic() + 20
    while not standin.calls("GET", "/api/libraries") and time.monotonic() < deadline:
        time.sleep(0.01)
    for job_id in range(2, 7):
        pub.publish(outcome(library, job_id))
    held.set()
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert standin.scanned == [lib["id"], lib["id"]]


def test_rescan_without_a_holding_library_is_given_up_at_once(
    standin: ImmichStandIn, library: Path
) -> None:
    standin.add_library("elsewhere", ["/srv/other"])
    pub = publisher(standin.url, library, mode="rescan")
    with capture_logs() as logs:
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    (given_up,) = [e for e in logs if e["event"] == "delivery given up"]
    assert given_up["reason"] == "not retryable" and given_up["attempt"] == 1
    assert "no Immich external library" in given_up["error"]
    assert len(standin.calls("GET", "/api/libraries")) == 1 and not standin.scanned


def test_a_wrong_key_is_retried_with_backoff_then_reported_clearly(
    standin: ImmichStandIn, library: Path
) -> None:
    pub = publisher(standin.url, library, api_key="wrong", max_attempts=3)
    with capture_logs() as logs:
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    uploads = standin.calls("POST", "/api/assets")
    assert [u.status for u in uploads] == [401, 401, 401]
    retries = [e for e in logs if e["event"] == "delivery failed, will retry"]
    assert [e["retry_in_s"] for e in retries] == [0.01, 0.02]
    (given_up,) = [e for e in logs if e["event"] == "delivery given up"]
    assert given_up["reason"] == "attempts exhausted"
    assert "401" in given_up["error"] and "immich.api_key" in given_up["error"]


def test_a_wrong_url_path_says_404_and_what_to_check(library: Path) -> None:
    with ImmichStandIn(api_key=KEY) as standin:
        pub = publisher(standin.url + "/immich", library, max_attempts=1)
        with capture_logs() as logs:
            pub.publish(outcome(library))
            assert pub.outbox.wait_idle(timeout=20)
        pub.close()
    (given_up,) = [e for e in logs if e["event"] == "delivery given up"]
    assert "404" in given_up["error"] and "immich.url" in given_up["error"]


def test_server_errors_are_retried_until_the_server_answers(
    standin: ImmichStandIn, library: Path
) -> None:
    original = standin.add_asset(b"original key photo bytes", "upload/IMG_0001.HEIC")
    standin.fail("POST", "/api/assets", 503, times=2)
    standin.fail("POST", "/api/stacks", 502)
    pub = publisher(standin.url, library)
    pub.publish(outcome(library))
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert [u.status for u in standin.calls("POST", "/api/assets")] == [503, 503, 201, 200]
    assert [s.status for s in standin.calls("POST", "/api/stacks")] == [502, 201]
    uploaded = [a for a in standin.assets.values() if a.id != original.id]
    assert len(uploaded) == 1  # the retry after the stack failure found its own upload
    assert standin.stacks[0]["assets"][0]["id"] == uploaded[0].id


def test_a_timeout_does_not_block_the_caller_nor_upload_twice(
    standin: ImmichStandIn, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = standin.add_asset(b"original key photo bytes", "upload/IMG_0001.HEIC")
    held = standin.hold("POST", "/api/assets")  # the upload lands, its answer never comes
    pub = publisher(standin.url, library, timeout_seconds=0.3)
    senders: list[threading.Thread] = []
    send = immich_module.call

    def call_noting_the_thread(*args: object, **kwargs: object) -> object:
        senders.append(threading.current_thread())
        return send(*args, **kwargs)

    monkeypatch.setattr(immich_module, "call", call_noting_the_thread)
    with capture_logs() as logs:
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
    # queued, not sent, on the caller's thread: every request went out from the outbox's own
    assert senders and threading.main_thread() not in senders
    held.set()
    pub.close()
    assert any("timed out" in e.get("error", "") for e in logs)
    statuses = [u.status for u in standin.calls("POST", "/api/assets")]
    assert statuses == [201, 200]  # the retry is answered "duplicate", not stored again
    assert len(standin.assets) == 2 and standin.stacks[0]["assets"][1]["id"] == original.id


def test_an_unreachable_server_is_reported(library: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pub = publisher(f"http://127.0.0.1:{port}", library, max_attempts=2)
    with capture_logs() as logs:
        pub.publish(outcome(library))
        assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    (given_up,) = [e for e in logs if e["event"] == "delivery given up"]
    assert "cannot reach" in given_up["error"]


def test_a_waiting_delivery_survives_a_restart_through_its_store(
    standin: ImmichStandIn, library: Path
) -> None:
    standin.add_asset(b"original key photo bytes", "upload/IMG_0001.HEIC")
    standin.fail("POST", "/api/assets", 503)
    store = MemoryOutboxStore()
    first = publisher(standin.url, library, store=store, backoff_seconds=0.5)
    first.publish(outcome(library))
    deadline = time.monotonic() + 20
    while not any(d.last_error for d in store.list_outbox()) and time.monotonic() < deadline:
        time.sleep(0.01)
    first.close(timeout=5)  # lmd stops while the delivery waits for its retry
    (kept,) = store.list_outbox("pending")
    assert kept.attempts == 1 and "503" in (kept.last_error or "")
    second = publisher(standin.url, library, store=store, backoff_seconds=0.5)
    second.outbox.start()
    assert second.outbox.wait_idle(timeout=20)
    second.close()
    assert standin.stacks and store.list_outbox("pending") == []


def test_library_holding_picks_the_longest_import_path_only_on_path_boundaries() -> None:
    libs = [
        {"id": "a", "importPaths": ["/mnt/photos"]},
        {"id": "b", "importPaths": ["/mnt/photos/2026"]},
        {"id": "c", "importPaths": ["/mnt/photos2026"]},
    ]
    assert library_holding(libs, "/mnt/photos/2026/x.jpg")["id"] == "b"  # type: ignore[index]
    assert library_holding(libs, "/mnt/photos/2025/x.jpg")["id"] == "a"  # type: ignore[index]
    assert library_holding(libs, "/mnt/photos2026x/y.jpg") is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "http://immich:2283"}, "api_key"),
        ({"url": "immich:2283", "api_key": "k"}, "http"),
        ({"url": "http://immich:2283/?x=1", "api_key": "k"}, "query"),
        ({"mode": "sync"}, "upload"),
        ({"max_attempts": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_immich_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ImmichSettings(**values)  # type: ignore[arg-type]


def test_the_api_key_is_not_printed() -> None:
    s = ImmichSettings(url="http://immich:2283/", api_key="topsecret")
    assert "topsecret" not in repr(s) and "topsecret" not in s.model_dump_json()
    assert s.url == "http://immich:2283"
