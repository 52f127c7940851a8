"""`lmd review serve` on a port another program holds: one `lmd:` line that says the port is in
use and how to choose another, exit 1 (it was uvicorn's own "ERROR: [Errno 98] ..." line and
exit status 3, a code lmd does not document); `lmd run` logs the same reason and goes on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.review.web.server import ReviewServer, ServeRefused
from daemon.store import open_store
from tests.review.helpers import settings_for


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield int(holder.getsockname()[1])


def test_serve_on_a_port_in_use_says_so(
    tmp_path: Path, taken_port: int, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text(f'library = "{tmp_path}"\nstate_dir = "{tmp_path / "state"}"\n'
                      '[watcher]\nmode = "off"\n')
    for name in ("LMD_REVIEW__TOKEN", "LMD_REVIEW__PORT", "LMD_REVIEW__HOST", "LMD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LMD_CONFIG", str(config))
    code = main(["review", "serve", "--port", str(taken_port)])
    _, err = capsys.readouterr()
    assert code == 1
    lines = [line for line in err.splitlines() if not line.startswith("{")]
    assert " ".join(lines).startswith(
        f"lmd: the review page cannot listen on 127.0.0.1:{taken_port}: port {taken_port} is"
        " in use"
    )
    assert "--port" in err and "Errno 98" not in err


def test_the_daemons_page_names_the_busy_port(tmp_path: Path, taken_port: int) -> None:
    settings = settings_for(tmp_path, tmp_path / "library", review={"port": taken_port})
    with open_store(settings.database_url) as store:
        server = ReviewServer(settings, store)
        with pytest.raises(ServeRefused, match=f"port {taken_port} is in use"):
            server.start()
        server.stop()
