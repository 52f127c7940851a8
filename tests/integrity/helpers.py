"""Helpers for the integrity tests and the soak: the library, the settings, workers that run
jobs in this process, and restorers whose output can be told apart or held at a point."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from core import Diagnostics, RestoreRequest, RestoreResult
from daemon.review.gate import PublishDirectly
from daemon.settings import Settings
from daemon.store import JobStore
from daemon.worker import Worker
from daemon.worker.files import LibraryFiles
from tests.service.helpers import make_settings

#: Live Photos in the test library: 64x48 video, stills at twice that (128x96)
PHOTOS = 3
VIDEO = (64, 48)
SCALE = 2
#: generous: a condition the tests wait for normally holds within milliseconds
DEADLINE_SECONDS = 60.0


def build_library(library: Path, count: int, first_number: int = 1201, seed: int = 7) -> Path:
    from daemon.demo import build_sample_library

    build_sample_library(library, count=count, video_size=VIDEO, scale=SCALE,
                         first_number=first_number, seed=seed)
    return library


def integrity_settings(tmp_path: Path, library: Path, **overrides: Any) -> Settings:
    """Replace mode, a lease long enough that it only runs out when a test moves its expiry,
    and heartbeats that never come during a test (a test decides who holds what). Jobs pin
    `guided` (the settings offer no other weight-free restorer); the workers run the cheap
    `bicubic` restorer or a test's own in its place (`worker`)."""
    base: dict[str, Any] = {
        "library": library,
        "output": {"mode": "replace"},
        "worker": {"lease_seconds": 7200, "heartbeat_seconds": 3600, "max_attempts": 50},
    }
    base.update(overrides)
    return make_settings(tmp_path, **base)


def worker(settings: Settings, store: JobStore, name: str = "box", **kwargs: Any) -> Worker:
    """A worker that writes straight to the library (no review step), on `store`, running
    `restorer` (default: `bicubic`) for every job."""
    from core.baselines import BicubicRestorer

    files = kwargs.pop("files", None) or LibraryFiles(index=store)
    restorer = kwargs.pop("restorer", None) or BicubicRestorer()
    return Worker(settings, store, worker_id=name, files=files, review=PublishDirectly(),
                  restorer=restorer, **kwargs)


def wait_for(condition: Any, what: str) -> None:
    """Poll `condition()` until true, failing after `DEADLINE_SECONDS`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


class Tinted:
    """A restorer whose output is the target upscaled (nearest) and shifted by `offset`, so two
    workers' outputs for one job differ. `requests` keeps the targets it was given."""

    name = "tinted"

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.requests: list[RestoreRequest] = []

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.requests.append(request)
        h, w = request.reference.shape[:2]
        target = np.asarray(request.target, dtype=np.float32)
        if target.max() > 1.0:
            target = target / 255.0
        ys = np.arange(h) * target.shape[0] // h
        xs = np.arange(w) * target.shape[1] // w
        image = np.clip(target[ys][:, xs] + self.offset, 0.0, 1.0)
        return RestoreResult(image.astype(np.float32), Diagnostics(tiles=1))


class Held(Tinted):
    """A `Tinted` restorer that holds each restoration until `go` is set (ignoring its cancel
    token, as a long step of a real model does); `started` is set once one is held."""

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__(offset)
        self.started = threading.Event()
        self.go = threading.Event()

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.started.set()
        if not self.go.wait(DEADLINE_SECONDS):
            raise AssertionError("the held restoration was never let go")
        return super().restore(request)


def expire(store: JobStore, job_id: int) -> None:
    """Move a running job's lease expiry into the past: its worker stalled past its lease
    (SIGSTOP, a swapped-out box), without anyone sleeping."""
    from datetime import timedelta

    from sqlalchemy import update

    from daemon.store.jobs import utcnow
    from daemon.store.models import jobs

    with store.engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == job_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


class HeldAfterWriting(LibraryFiles):
    """Real files that hold the worker right after its output was renamed into place (before
    the job's success is recorded) until `go` is set; `written` is set once it is held."""

    def __init__(self, index: Any) -> None:
        super().__init__(index=index)
        self.written = threading.Event()
        self.go = threading.Event()

    def write(self, *args: Any, **kwargs: Any) -> Any:
        signature = super().write(*args, **kwargs)
        self.written.set()
        if not self.go.wait(DEADLINE_SECONDS):
            raise AssertionError("the held worker was never let go")
        return signature


def lmd_revert(settings: Settings, *args: str) -> Any:
    """`lmd revert ARGS` in this process (typer's runner) on `settings`' library and state,
    from the library's folder; returns the runner's result."""
    import os

    from typer.testing import CliRunner

    from daemon.cli import outputs as outputs_cli
    from daemon.cli.context import CliState

    config = Path(settings.state_dir) / "lmd.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'library = "{settings.library}"\nstate_dir = "{settings.state_dir}"\n'
        f'[output]\nmode = "{settings.output.mode}"\n'
    )
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = CliState(config_path=config)

    outputs_cli.register(app)
    here = os.getcwd()
    os.chdir(settings.library)
    try:
        return CliRunner().invoke(app, ["revert", *args])
    finally:
        os.chdir(here)


class Killed(BaseException):
    """Stands for SIGKILL in this process: no handler of the worker's catches it, so the job is
    left running under its lease, whatever was on disk stays as it was."""


def kill_at_the_final_record_write(
    patcher: Any, when: Any = lambda record: record.output is not None
) -> None:
    """Through `patcher` (a pytest MonkeyPatch or its context), make the replace protocol's
    record save raise `Killed` for the first record `when` picks (default: the one naming the
    output after its rename), saving the others as usual."""
    import daemon.output.replace as replace_module

    save = replace_module.save_record

    def dies_on_the_final_write(record: Any) -> None:
        if when(record):
            raise Killed
        save(record)

    patcher.setattr(replace_module, "save_record", dies_on_the_final_write)
