"""`lmd run` as systemd runs it: a real process, a real notify socket, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daemon.demo import build_sample_library

REPO = Path(__file__).resolve().parents[2]


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None

    def drain_in_background(self) -> None:
        """Read continuously, as systemd does. A listener that only reads while a test waits on
        it lets the kernel's queue (10 datagrams on Linux) fill with WATCHDOG=1 during a long
        wait, and the daemon then rightly drops what follows, STOPPING=1 included."""

        def drain() -> None:
            while not self._stop.is_set():
                self.collect()

        self._drainer = threading.Thread(target=drain, daemon=True)
        self._drainer.start()

    def close(self) -> None:
        self._stop.set()
        if self._drainer is not None:
            self._drainer.join(5)
        self.sock.close()

    def collect(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            self.messages.extend(data.decode().splitlines())

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.collect()
            for message in self.messages:
                if message.startswith(prefix):
                    return message
        raise AssertionError(f"no {prefix!r} in {self.messages}")


def wait_until(condition, what: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition()` until it holds; fail after `seconds` (deadlines are generous: the
    conditions normally hold within a few seconds)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.01)


def status_json(config: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "status", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.slow
def test_run_speaks_notify_shows_progress_and_stops_cleanly(tmp_path: Path) -> None:
    library = tmp_path / "library"
    # big enough that a job runs for a few seconds, so status can catch it running
    build_sample_library(library, count=1, video_size=(320, 240), scale=4)
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[watcher]\nmode = "inotify"\ndebounce_seconds = 0.5\n'
        '[worker]\nwindows = ["00:00-24:00"]\npoll_seconds = 0.5\nheartbeat_seconds = 0.5\n'
        '[logging]\nformat = "json"\n'
    )
    listener = NotifyListener(tmp_path / "notify.sock")
    listener.drain_in_background()
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    from daemon.store import open_store

    try:
        listener.wait_for("READY=1", 60)
        # Watch the workers table in-process (milliseconds a look, against a job of seconds);
        # once the job runs, freeze the daemon so `lmd status` is sure to find it running.
        store = open_store(f"sqlite:///{tmp_path / 'state' / 'lmd.sqlite3'}", migrate=False)
        try:
            wait_until(
                lambda: any(w["state"] == "running" and w["job_id"] and w["pid"] == proc.pid
                            for w in store.get_workers()),
                "the job to run", 120,
            )
            proc.send_signal(signal.SIGSTOP)
            try:
                frozen = status_json(config)
            finally:
                proc.send_signal(signal.SIGCONT)
            wait_until(lambda: store.counts()["succeeded"] == 1, "the job to succeed", 120)
        finally:
            store.close()
        [running] = [w for w in frozen["worker"] if w["state"] == "running"]
        assert running["job_id"] and running["window"] == "00:00-24:00"
        assert running["stage"] and running["progress"] is not None
        status = status_json(config)
        assert status["jobs"]["succeeded"] == 1, status
        assert status["last_scan"] is not None
        listener.wait_for("WATCHDOG=1", 10)
        listener.wait_for("STATUS=", 10)

        # the watcher feeds the scanner: a new Live Photo is picked up without a cron tick
        build_sample_library(library, count=1, video_size=(96, 72), scale=2, first_number=1301)
        wait_until(lambda: status_json(config)["jobs"]["succeeded"] == 2, "the new photo", 120)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read().decode() if proc.stderr else ""
        listener.collect()
        assert "STOPPING=1" in listener.messages
        assert any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in listener.messages)
        stopped = status_json(config)["worker"]
        assert all(w["state"] == "stopped" for w in stopped)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()


def test_run_without_library_is_an_operational_error(tmp_path: Path) -> None:
    config = tmp_path / "lmd.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 1
    assert "no library configured" in out.stderr
    assert "Traceback" not in out.stderr


def test_notify_never_blocks_on_a_listener_that_does_not_read(tmp_path: Path) -> None:
    from daemon.notify import Notifier

    listener = NotifyListener(tmp_path / "n.sock")
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": str(listener.path)})
        started = time.monotonic()
        sent = [notifier.watchdog() for _ in range(200)]  # far beyond max_dgram_qlen
        assert time.monotonic() - started < 5
        assert sent[0] is True and sent[-1] is False  # queue full: dropped, not blocked
        listener.collect()
        assert listener.messages and set(listener.messages) == {"WATCHDOG=1"}
    finally:
        listener.close()


@pytest.mark.slow
def test_sigterm_mid_job_returns_it_to_the_queue(tmp_path: Path) -> None:
    library = tmp_path / "library"
    build_sample_library(library, count=1, video_size=(480, 360), scale=4)
    state = tmp_path / "state"
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{state}"\n[watcher]\nmode = "off"\n'
        '[worker]\npoll_seconds = 0.2\nheartbeat_seconds = 0.2\n[logging]\nformat = "json"\n'
    )
    listener = NotifyListener(tmp_path / "notify.sock")
    listener.drain_in_background()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        cwd=REPO, env={**os.environ, "NOTIFY_SOCKET": str(listener.path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    from daemon.store import open_store

    try:
        listener.wait_for("READY=1", 60)
        store = open_store(f"sqlite:///{state / 'lmd.sqlite3'}", migrate=False)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(w["state"] == "running" and w["pid"] == proc.pid
                       for w in store.get_workers()):
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, proc.stderr.read().decode() if proc.stderr else ""
            job = store.list_jobs()[0]
            assert job.state == "pending", job
            assert store.events(job.id)[-1].reason == "cancelled (stop)"
        finally:
            store.close()
        listener.collect()
        assert "STOPPING=1" in listener.messages
        leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".lmd-tmp")]
        assert leftovers == [] and not list((state / "restored").rglob("*.HEIC"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()


def test_watcher_ignores_lmds_own_outputs(tmp_path: Path) -> None:
    """A beside output (`IMG_0001_lmd.HEIC`) written into the library is lmd's own work: the
    watcher must not ask for a rescan because of it, while a new photo still does."""
    from daemon.service import Service
    from tests.service.helpers import make_settings

    (tmp_path / "library").mkdir()
    settings = make_settings(
        tmp_path,
        watcher={"mode": "inotify", "debounce_seconds": 0.2},
        output={"location": "beside"},
    )
    service = Service(settings)
    service.watcher.debouncer.pair_grace = 0.3  # a lone still is handed on soon, not in 2 min
    handed: list[Path] = []
    to_service = service.watcher._on_ready
    service.watcher._on_ready = lambda paths: (handed.extend(paths), to_service(paths))
    service.watcher.start()
    try:
        # The output is written first: were it not ignored, the debouncer would hand it on no
        # later than the photo written after it, so once the photo is handed on, it is decided.
        (tmp_path / "library" / "IMG_0001_lmd.HEIC").write_bytes(b"o" * 64)
        (tmp_path / "library" / "clip.mp4").write_bytes(b"v" * 64)
        wait_until(lambda: any(p.name == "clip.mp4" for p in handed), "the new photo", 60)
        assert service.scans.wanted.is_set()
        assert [p.name for p in handed] == ["clip.mp4"]
    finally:
        service.watcher.stop()
        service.store.close()
