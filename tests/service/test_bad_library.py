"""The whole malformed-file corpus inside a live daemon's library: it keeps running, restores
the good photo, and `lmd status` lists the bad files with their reasons."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.demo import build_sample_library
from daemon.store import open_store
from tests.library.test_bad_input import Corpus, build
from tests.service.helpers import tree_hashes
from tests.service.test_service import status_json

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_daemon_survives_the_corpus_and_reports_it(tmp_path: Path) -> None:
    library, outside = tmp_path / "library", tmp_path / "outside"
    library.mkdir()
    outside.mkdir()
    (library / "bad").mkdir()
    corpus = Corpus(library / "bad", outside)
    build(corpus)
    outside_before = tree_hashes(outside)
    build_sample_library(library, count=1, video_size=(96, 72), scale=2)
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[watcher]\nmode = "inotify"\ndebounce_seconds = 0.5\n'
        '[worker]\npoll_seconds = 0.5\n[logging]\nformat = "json"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
    )
    try:
        deadline = time.monotonic() + 120
        status: dict = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            if not (tmp_path / "state" / "lmd.sqlite3").exists():
                # `lmd status` only reads: it says "no database yet" until the daemon made one
                time.sleep(0.1)
                continue
            status = status_json(config)
            if status["jobs"]["succeeded"] >= 1 and status["last_scan"]:
                break
            time.sleep(0.5)
        assert status["jobs"]["succeeded"] == 1, status
        problems = status["library_problems"]
        assert len(problems) >= 20 and all(p["reason"] for p in problems)
        store = open_store(f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}", migrate=False)
        try:
            everything = store.library_problems(1000)
        finally:
            store.close()
        assert len(everything) >= 30
        assert all(p["key"].startswith("bad") for p in everything)  # the good photo is fine
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert tree_hashes(outside) == outside_before  # nothing outside the root touched
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
