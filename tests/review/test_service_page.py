"""`[review] serve = true`: `lmd run` (`daemon.service.Service`) serves the page too, and a
bind beyond loopback without a token stops the daemon's start with the reason."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from daemon.service import Service
from tests.review.helpers import copy_library, settings_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_daemon_serves_the_review_page_when_asked(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    port = _free_port()
    service = Service(settings_for(tmp_path, library, review={"serve": True, "port": port}))
    try:
        assert service.review_page is not None
        service._start_review_page()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
        assert page.status_code == 200 and "lmd review" in page.text
    finally:
        if service.review_page is not None:
            service.review_page.stop()
        service.store.close()
    quiet = Service(settings_for(tmp_path, library))
    try:
        assert quiet.review_page is None  # off unless asked for
    finally:
        quiet.store.close()


def test_a_daemon_asked_to_serve_beyond_loopback_without_a_token_does_not_start(
    tmp_path: Path, source_library: Path
) -> None:
    library = copy_library(source_library, tmp_path)
    settings = settings_for(tmp_path, library, review={"serve": True, "host": "0.0.0.0"})
    with pytest.raises(ValueError, match=r"\[review\] token"):
        Service(settings)
