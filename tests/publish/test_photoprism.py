"""PhotoPrism: index requests against a loopback stand-in, and names PhotoPrism stacks."""

from __future__ import annotations

import fnmatch
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

import daemon.publish.photoprism as photoprism_module
from daemon.publish.outcome import JobOutcome
from daemon.publish.photoprism import PhotoPrismPublisher, photoprism_stack_name
from daemon.publish.settings import PhotoPrismSettings
from tests.publish.photoprism_standin import PhotoPrismStandIn

TOKEN = "app-password"


@pytest.fixture
def standin() -> Iterator[PhotoPrismStandIn]:
    with PhotoPrismStandIn(token=TOKEN) as server:
        yield server


def publisher(url: str, library: Path, **kw: object) -> PhotoPrismPublisher:
    base: dict[str, object] = {
        "url": url,
        "token": TOKEN,
        "timeout_seconds": 2.0,
        "max_attempts": 3,
        "backoff_seconds": 0.01,
        "max_backoff_seconds": 0.05,
    }
    settings = PhotoPrismSettings(**{**base, **kw})  # type: ignore[arg-type]
    return PhotoPrismPublisher(settings, library_root=library)


def outcome(output: Path, job_id: int = 1) -> JobOutcome:
    return JobOutcome(job_id, "a/IMG_0001.HEIC", output.with_name("IMG_0001.HEIC"), output, "x")


def test_the_outputs_folder_is_indexed_with_the_token(
    standin: PhotoPrismStandIn, tmp_path: Path
) -> None:
    pub = publisher(standin.url, tmp_path)
    pub.publish(outcome(tmp_path / "2026" / "04" / "IMG_E0001.HEIC"))
    pub.publish(outcome(tmp_path / "IMG_E0002.HEIC"))
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    first, second = standin.calls("POST", "/api/v1/index")
    assert first.json == {"path": "2026/04", "rescan": False, "cleanup": False}
    assert second.json == {"path": "", "rescan": False, "cleanup": False}
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["x-auth-token"] == TOKEN
    assert standin.indexed == ["2026/04", ""]


def test_paths_are_relative_to_photoprisms_originals_folder(
    standin: PhotoPrismStandIn, tmp_path: Path
) -> None:
    originals = tmp_path / "photos"
    pub = publisher(standin.url, originals / "phone", originals=str(originals))
    pub.publish(outcome(originals / "phone" / "2026" / "IMG_E0001.HEIC"))
    with capture_logs() as logs:
        pub.publish(outcome(tmp_path / "lmd-out" / "IMG_E0001.HEIC"))  # outside originals
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert standin.indexed == ["phone/2026"]
    assert any("outside the originals folder" in e["event"] for e in logs)


def test_a_burst_in_one_folder_is_indexed_once_more(
    standin: PhotoPrismStandIn, tmp_path: Path
) -> None:
    held = standin.hold("POST", "/api/v1/index")
    pub = publisher(standin.url, tmp_path)
    pub.publish(outcome(tmp_path / "a" / "1.HEIC"))
    deadline = time.monotonic() + 20
    while not standin.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(5):
        pub.publish(outcome(tmp_path / "a" / f"{i}.HEIC"))
    pub.publish(outcome(tmp_path / "b" / "1.HEIC"))
    held.set()
    assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert standin.indexed == ["a", "a", "b"]


def test_a_wrong_token_is_retried_then_reported(standin: PhotoPrismStandIn, tmp_path: Path) -> None:
    pub = publisher(standin.url, tmp_path, token="nope")
    with capture_logs() as logs:
        pub.publish(outcome(tmp_path / "IMG_E0001.HEIC"))
        assert pub.outbox.wait_idle(timeout=20)
    pub.close()
    assert [r.status for r in standin.requests] == [401, 401, 401]
    (given_up,) = [e for e in logs if e["event"] == "delivery given up"]
    assert "photoprism.token" in given_up["error"] and given_up["attempt"] == 3


def test_busy_and_slow_servers_are_retried(
    standin: PhotoPrismStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.fail("POST", "/api/v1/index", 429)
    held = standin.hold("POST", "/api/v1/index", skip=1)  # the second try times out
    pub = publisher(standin.url, tmp_path, timeout_seconds=0.3)
    senders: list[threading.Thread] = []
    send = photoprism_module.call

    def call_noting_the_thread(*args: object, **kwargs: object) -> object:
        senders.append(threading.current_thread())
        return send(*args, **kwargs)

    monkeypatch.setattr(photoprism_module, "call", call_noting_the_thread)
    with capture_logs() as logs:
        pub.publish(outcome(tmp_path / "IMG_E0001.HEIC"))
        assert pub.outbox.wait_idle(timeout=20)
    # the caller only queued it: every request went out from the outbox's own thread
    assert senders and threading.main_thread() not in senders
    held.set()
    pub.close()
    errors = [e["error"] for e in logs if e["event"] == "delivery failed, will retry"]
    assert "429" in errors[0] and "timed out" in errors[1]
    assert any(e["event"] == "delivered" for e in logs)
    assert [r.status for r in standin.requests] == [429, 200, 200]


def _photoprism_stacks(original: str, other: str) -> bool:
    """PhotoPrism's related-file rules (mediafile_related.go), applied to two names in one
    folder, with "stack sequential names" off (its default)."""
    prefix = original.split(".", 1)[0]
    base = original
    apple = base[:4].upper() == "IMG_" and base[:5].upper() != "IMG_E"
    return (
        fnmatch.fnmatchcase(other, prefix + ".*")
        or (apple and other == base[:4] + "E" + base[4:])
        or fnmatch.fnmatchcase(other, prefix + "_????.*")
    )


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("IMG_1234.HEIC", "IMG_1234_lmdr.HEIC"),
        ("img_0001.heic", "img_0001_lmdr.heic"),
        ("IMG_E1234.HEIC", "IMG_E1234_lmdr.HEIC"),
        ("PXL_20260101_101010123.jpg", "PXL_20260101_101010123_lmdr.jpg"),
    ],
)
def test_stack_names_are_ones_photoprism_stacks(original: str, expected: str) -> None:
    name = photoprism_stack_name(original)
    assert name == expected
    assert name != original and _photoprism_stacks(original, name)


@pytest.mark.parametrize("name", [".HEIC", "a/b.HEIC", "", "DSC0001"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="PhotoPrism stack name"):
        photoprism_stack_name(name)


def test_photoprism_settings_need_a_token() -> None:
    with pytest.raises(ValidationError, match=r"photoprism\.token"):
        PhotoPrismSettings(url="http://pp:2342")
    assert "s3cr3t" not in repr(PhotoPrismSettings(url="http://pp:2342", token="s3cr3t"))
