"""`lmd doctor` on the review page's settings (host, token, port) and on the face guard (the
`lmd[faces]` extra present, or "not available" with what to install)."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import faces
from daemon.doctor import check_faces, check_review
from daemon.settings import load_settings

TOKEN = "a-long-random-secret-for-tests"


def settings(tmp_path: Path, **review: Any) -> Any:
    return load_settings(None, library=tmp_path, state_dir=tmp_path / "state", review=review)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_loopback_page_on_a_free_port_is_ok(tmp_path: Path) -> None:
    port = free_port()
    found = check_review(settings(tmp_path, port=port, serve=True))
    assert found.status == "ok", found
    assert found.detail == f"http://127.0.0.1:{port}/ (this machine only; served by lmd run)"


def test_beyond_this_machine_without_a_token_fails(tmp_path: Path) -> None:
    found = check_review(settings(tmp_path, host="0.0.0.0", port=free_port()))
    assert found.status == "fail" and "without a token" in found.detail
    assert "LMD_REVIEW__TOKEN" in found.fix
    with_token = check_review(settings(tmp_path, host="0.0.0.0", port=free_port(), token=TOKEN))
    assert with_token.status == "ok" and "the network, token required" in with_token.detail


def test_a_port_in_use_and_an_address_elsewhere(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        found = check_review(settings(tmp_path, port=port))
    assert found.status == "warn" and f"port {port} is in use" in found.detail
    # TEST-NET-1 (RFC 5737): no machine here has it
    elsewhere = check_review(settings(tmp_path, host="192.0.2.1", port=free_port(), token=TOKEN))
    assert elsewhere.status == "fail" and "cannot listen there" in elsewhere.detail


@pytest.fixture
def fresh_models() -> Iterator[None]:
    faces.forget_models()
    yield
    faces.forget_models()


def test_faces_available_with_the_extra(tmp_path: Path, fresh_models: None) -> None:
    pytest.importorskip("dlib")
    found = check_faces(settings(tmp_path))
    assert found.status == "ok", found


def test_faces_not_available_without_the_extra(
    tmp_path: Path, fresh_models: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` raises ImportError
    found = check_faces(settings(tmp_path))
    assert found.status == "warn"
    assert found.detail.startswith("face check not available") and "lmd[faces]" in found.fix
