"""Crash safety, proven with real processes: SIGKILL the worker again and again, then finish.

Every job must succeed exactly once, no temporary or partial file may remain anywhere, the
library must be byte-identical, and there must be exactly one output per job.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.demo import build_sample_library
from daemon.library.media import load_still
from daemon.output import TEMP_PREFIX
from daemon.store import open_store
from tests.service.helpers import tree_hashes

REPO = Path(__file__).resolve().parents[2]
JOBS = 30
KILLS = 20


def lmd(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_sigkill_storm_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    library = tmp_path / "library"
    build_sample_library(library, count=JOBS, video_size=(128, 96), scale=2)
    before = tree_hashes(library)
    state = tmp_path / "state"
    config = tmp_path / "lmd.toml"
    config.write_text(
        f'library = "{library}"\nstate_dir = "{state}"\n'
        "[watcher]\nmode = \"off\"\n"
        "[worker]\nlease_seconds = 2\nheartbeat_seconds = 0.5\nmax_attempts = 100\n"
        "defer_seconds = 1\n"
        '[logging]\nformat = "json"\nlevel = "warning"\n'
    )
    scan = lmd(config, "scan")
    assert scan.wait(120) == 0, scan.stderr.read().decode() if scan.stderr else ""

    rng = random.Random(1234)
    kills = runs = 0
    store = open_store(f"sqlite:///{state / 'lmd.sqlite3'}")
    try:
        while kills < KILLS and runs < 4 * KILLS:
            runs += 1
            proc = lmd(config, "work")
            # most kills land while a job runs (mid-restore or mid-write), some at random
            if rng.random() < 0.8:
                started = time.monotonic()
                while proc.poll() is None and time.monotonic() - started < 15:
                    if any(
                        w["state"] == "running" and w["pid"] == proc.pid
                        for w in store.get_workers()
                    ):
                        break
                    time.sleep(0.05)
                time.sleep(rng.uniform(0.0, 0.4))
            else:
                time.sleep(rng.uniform(0.2, 2.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
        assert kills >= KILLS, f"only {kills} kills landed in {runs} runs"

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            proc = lmd(config, "work")
            assert proc.wait(240) == 0, proc.stderr.read().decode() if proc.stderr else ""
            if store.counts()["succeeded"] == JOBS:
                break
            # what is left is held by killed workers' leases: wait until they run out (2 s)
            # and the jobs are claimable again, then work once more
            while store.requeue_expired() == 0 and store.counts()["running"] and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
        counts = store.counts()
        assert counts["succeeded"] == JOBS, counts
        assert sum(counts.values()) == JOBS
        outputs = []
        interrupted = 0
        for job in store.list_jobs(limit=1000):
            events = store.events(job.id)
            succeeded = [e for e in events if e.to_state == "succeeded"]
            assert len(succeeded) == 1, (job.id, succeeded)
            interrupted += sum("lease expired" in (e.reason or "") for e in events)
            outputs.append(Path(job.output_path))
        assert interrupted >= KILLS // 2, "the kills should have interrupted running jobs"
    finally:
        store.close()

    assert tree_hashes(library) == before
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []
    written = sorted(p for p in (state / "restored").rglob("*") if p.is_file())
    assert written == sorted(outputs) and len(set(outputs)) == JOBS
    for path in written:
        assert load_still(path).shape[2] == 3  # every output decodes
