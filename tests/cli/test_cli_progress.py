"""Progress people can see (issue 13 item 4): during a restoration the worker's row carries
the restorer's stage and fraction (`lmd status` moves), `lmd work` ends with its row
`stopped`, and the watcher of `lmd work` hears each job start, progress and finish."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core import Diagnostics, RestoreRequest, RestoreResult
from daemon.cli import main


class HeldRestorer:
    """Reports one stage, then waits until the test has seen it, then upscales the target."""

    name = "held"

    def __init__(self) -> None:
        self.release = threading.Event()

    def restore(self, request: RestoreRequest) -> RestoreResult:
        import cv2

        request.progress(0.4, "tile 2/5")
        assert self.release.wait(120), "the test never saw the progress"
        h, w = request.reference.shape[:2]
        up = cv2.resize(np.asarray(request.target, np.float32), (w, h))
        return RestoreResult(np.clip(up / (255 if up.max() > 1 else 1), 0, 1), Diagnostics())


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, job) -> None:
        self.events.append(("started", job.id))

    def progress(self, job, fraction: float, stage: str) -> None:
        self.events.append(("progress", job.id, fraction, stage))

    def finished(self, job, outcome: str) -> None:
        self.events.append(("finished", job.id, outcome))


def test_status_moves_during_a_restoration_and_work_ends_stopped(
    tmp_path: Path, configured: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from daemon.logging import configure_logging
    from daemon.scanner import run_scan
    from daemon.settings import load_settings
    from daemon.store import open_store
    from daemon.worker import Worker

    configure_logging("warning")  # log lines to stderr, as main() sets them, from the start
    monkeypatch.setattr("daemon.worker.heartbeat.PROGRESS_SECONDS", 0.05)
    monkeypatch.delenv("LMD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # ./lmd.toml: the sample library, its state directory
    settings = load_settings(configured)
    store = open_store(settings.database_url)
    try:
        run_scan(settings, settings.library, store=store)
        restorer, heard = HeldRestorer(), Heard()
        worker = Worker(settings, store, worker_id="w", restorer=restorer, watcher=heard)
        ran: list[int] = []
        thread = threading.Thread(target=lambda: ran.append(worker.run_until_empty(1)))
        thread.start()
        try:
            deadline = time.monotonic() + 60
            while True:  # what `lmd status --json` shows, polled until the stage arrives
                assert main(["status", "--json"]) == 0
                [row] = json.loads(capsys.readouterr().out)["worker"]
                if row["stage"] == "tile 2/5" or time.monotonic() > deadline:
                    break
            assert (row["state"], row["progress"], row["stage"]) == ("running", 0.4, "tile 2/5")
        finally:
            restorer.release.set()
            thread.join(60)
        assert ran == [1]
        [row] = store.get_workers()
        assert row["state"] == "stopped" and row["job_id"] is None
        job_id = store.list_jobs(state="succeeded")[0].id
        assert heard.events[0] == ("started", job_id)
        assert ("progress", job_id, 0.4, "tile 2/5") in heard.events
        assert heard.events[-1] == ("finished", job_id, "succeeded")
    finally:
        store.close()
