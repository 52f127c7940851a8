"""Helpers for the store tests: JobSpecs like the scanner builds, and the functions that the
concurrency tests run in separate processes (multiprocessing spawn)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from daemon.store import JobSpec, OutputSpec, job_identity, open_store

#: The output a scan with the default settings pins on a job.
OUTPUT = OutputSpec(
    mode="sidecar", location="tree", root=Path("/photos"), tree=Path("/state/restored"),
    suffix="_lmd", backup_dir=Path("/state/backups"), jpeg_quality=95, heic_quality=90,
)


def make_spec(
    key: str = "lib/IMG_0001",
    content: str | None = None,
    *,
    t1: float | None = 1.5,
    priority: int = 0,
    max_attempts: int = 3,
    reference: str | None = None,
    output: OutputSpec = OUTPUT,
) -> JobSpec:
    """A JobSpec as the scanner would build it, with a real identity digest."""
    content = content or f"hash-of-{key}"  # distinct assets have distinct content
    signatures = {
        "reference": {"size": 100, "mtime_ns": 1, "content_hash": content},
        "video": {"size": 200, "mtime_ns": 1, "content_hash": content + "-mov"},
    }
    ref = reference or f"/photos/{key}.HEIC"
    return JobSpec(
        identity=job_identity(
            signatures, t1, "guided", "none", {"strength": 1.0}, output.to_dict()
        ),
        asset_key=key,
        payload={"key": key, "reference": ref, "video": ref.replace(".HEIC", ".MOV"),
                 "target": None, "t1": t1},
        restorer="guided",
        weights_digest="none",
        params={"strength": 1.0},
        output=output,
        priority=priority,
        max_attempts=max_attempts,
    )


def claim_all(url: str, worker_id: str, barrier: Any) -> list[int]:
    """Claim and finish jobs until the queue is empty; return the ids this process claimed."""
    claimed: list[int] = []
    with open_store(url, migrate=False) as store:
        barrier.wait(60)  # both processes connected: start claiming together
        misses = 0
        while misses < 3:
            job = store.claim(worker_id, lease_seconds=60)
            if job is None:
                misses += 1
                time.sleep(0.02)
                continue
            misses = 0
            claimed.append(job.id)
            # The job body, outside any transaction, as in a real worker. Without it a tight
            # loop can hold SQLite's write lock so often that the rival's busy handler rarely
            # finds it free, and the test could not show that both processes claimed.
            time.sleep(0.002)
            store.succeed(job.id, worker_id, f"/out/{job.id}", {"size": 1}, {"by": worker_id})
    return claimed


def claim_and_die(url: str, worker_id: str, lease_seconds: float) -> None:
    """Claim one job, then die without releasing it (as a crashed worker would)."""
    store = open_store(url, migrate=False)
    job = store.claim(worker_id, lease_seconds=lease_seconds)
    assert job is not None
    os._exit(0)


def enqueue_same(url: str, spec_args: dict, barrier: Any, repeats: int) -> list[bool]:
    """Enqueue the same identity `repeats` times, starting at the same moment as a rival."""
    spec = make_spec(**spec_args)
    created = []
    with open_store(url, migrate=False) as store:
        barrier.wait(60)
        for _ in range(repeats):
            created.append(store.enqueue(spec).created)
    return created


def open_at(url: str, barrier: Any) -> dict[str, int]:
    """Open (and migrate) the store at the same moment as a rival process."""
    barrier.wait(60)
    with open_store(url) as store:
        return store.counts()
