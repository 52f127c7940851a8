"""In-memory stand-ins for the worker's collaborators (`daemon.worker.interfaces`): a store, the
files and restorers, so the worker's outcome table runs in milliseconds without a database,
images on disk or a model. Each records what the worker asked of it."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from core import Diagnostics, RestoreRequest, RestoreResult
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset, Platform
from daemon.output import OutputPlan, plan_output
from daemon.store import Job, JobState, LeaseLost, OutputSpec
from daemon.store.states import WorkerState
from daemon.worker.files import InputsChanged, plan_job_output
from daemon.worker.interfaces import LoadedInputs

#: generous: a condition the tests wait for normally holds within milliseconds
DEADLINE_SECONDS = 30.0

OUTPUT = OutputSpec(
    mode="sidecar", location="tree", root=Path("/photos"), tree=Path("/state/restored"),
    suffix="_lmd", backup_dir=Path("/state/backups"), jpeg_quality=95, heic_quality=90,
)


def make_job(job_id: int = 1, **overrides: Any) -> Job:
    """A pending job as the scanner enqueues it: guided, no weights, the output pinned."""
    asset = LiveAsset(
        key=f"2026/IMG_{job_id:04d}", platform=Platform.APPLE,
        reference=Path(f"/photos/2026/IMG_{job_id:04d}.HEIC"),
        video=Path(f"/photos/2026/IMG_{job_id:04d}.MOV"),
        target=Path(f"/photos/2026/IMG_E{job_id:04d}.HEIC"), t0=0.3, t1=0.8, reselected=True,
        signatures={"reference": FileSignature(10, 1, "blake3:ab"),
                    "target": FileSignature(8, 1, "blake3:cd")},
    )
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": job_id, "identity": f"identity-{job_id}", "asset_key": asset.key,
        "state": JobState.PENDING, "priority": 0, "attempts": 0, "max_attempts": 3,
        "lease_owner": None, "lease_expires_at": None, "heartbeat_at": None,
        "not_before": None, "created_at": now, "updated_at": now, "started_at": None,
        "finished_at": None, "last_error": None, "payload": asset.to_dict(),
        "restorer": "guided", "weights_digest": "none", "params": {"seed": 3},
        "force": False, "output_path": None, "output_signature": None, "provenance": None,
        "progress": None, "stage": None, "superseded_by": None, "output": OUTPUT,
    }
    fields.update(overrides)
    return Job(**fields)


class FakeStore:
    """A `WorkerStore` over a list of jobs. `calls` lists (method, job id, details) in order;
    `lease_held = False` makes heartbeats and the fence refused and finishing calls report a
    lost lease. Every claim bumps the job's lease generation; `generations` lists the
    generation each call was made under."""

    def __init__(self, *jobs: Job, paused: bool = False) -> None:
        self.waiting = list(jobs)
        self.paused = paused
        self.lease_held = True
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        self.beats = 0
        self.fences = 0
        self.generations: dict[str, int | None] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _record(self, method: str, job_id: int, **details: Any) -> None:
        with self._lock:
            self.calls.append((method, job_id, details))

    def finished(self) -> list[tuple[str, dict[str, Any]]]:
        """The store calls that end a running job."""
        ends = {"succeed", "fail", "defer", "release", "skip"}
        return [(m, d) for m, _, d in self.calls if m in ends]

    def requeue_expired(self) -> int:
        return 0

    def is_paused(self) -> bool:
        return self.paused

    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        if not self.waiting:
            return None
        job = self.waiting.pop(0)
        return dataclasses.replace(
            job, state=JobState.RUNNING, attempts=job.attempts + 1, lease_owner=worker_id,
            lease_generation=job.lease_generation + 1,
        )

    def heartbeat(self, job_id: int, worker_id: str, lease_seconds: float,
                  progress: float | None = None, stage: str | None = None, *,
                  generation: int | None = None) -> bool:
        self.beats += 1
        self.generations["heartbeat"] = generation
        return self.lease_held

    def hold_lease(self, job_id: int, worker_id: str, generation: int,
                   lease_seconds: float) -> bool:
        self.fences += 1
        self.generations["fence"] = generation
        return self.lease_held

    def succeed(self, job_id: int, worker_id: str, output_path: str | None,
                output_signature: dict[str, Any] | None,
                provenance: dict[str, Any] | None, *, generation: int | None = None,
                kind: str | None = None, record: str | None = None,
                reason: str = "succeeded") -> None:
        self.generations["succeed"] = generation
        if not self.lease_held:
            raise LeaseLost(f"job {job_id} is no longer held by {worker_id}")
        self._record("succeed", job_id, path=output_path, signature=output_signature,
                     provenance=provenance, kind=kind, record=record, reason=reason)

    def fail(self, job_id: int, worker_id: str, error: str, *,
             retryable: bool = True, generation: int | None = None) -> JobState | None:
        self.generations["fail"] = generation
        self._record("fail", job_id, error=error, retryable=retryable)
        return JobState.PENDING if retryable else JobState.FAILED

    def defer(self, job_id: int, worker_id: str, reason: str,
              base_seconds: float, *, generation: int | None = None) -> datetime | None:
        self.generations["defer"] = generation
        self._record("defer", job_id, reason=reason, base_seconds=base_seconds)
        return datetime.now(UTC) + timedelta(seconds=base_seconds)

    def release(self, job_id: int, worker_id: str, reason: str, *,
                generation: int | None = None) -> bool:
        self.generations["release"] = generation
        self._record("release", job_id, reason=reason)
        return True

    def skip(self, job_id: int, reason: str, *, worker_id: str | None = None,
             generation: int | None = None) -> bool:
        self.generations["skip"] = generation
        self._record("skip", job_id, reason=reason)
        return True

    def find_outputs(self, hashes: Any) -> dict[str, Any]:
        return {}

    def outputs_at(self, path: str) -> list[Any]:
        return []

    def records_to_follow(self) -> list[Any]:
        return []

    def record_followed(self, output_id: int, target: str) -> None:
        raise AssertionError("no record to follow in the fake store")

    def upsert_worker(self, worker_id: str, *, state: WorkerState, **values: Any) -> None:
        self.workers[worker_id] = {"state": WorkerState(state), **values}


class FakeFiles:
    """`JobFiles` without files: inputs are small arrays, the plan is the real one (made from
    the job row), writing records what would be written (after calling the fence, as the real
    writer does immediately before its rename). `plan_error`/`load_error`/`write_error` are
    raised by `plan`/`load`/`write` when set; `in_place` says the job's output is still there;
    `undone` lists what `undo` was asked to take back."""

    WRITTEN = FileSignature(123, 1, "blake3:00")

    def __init__(self, *, unchanged: bool = True, plan_error: Exception | None = None,
                 load_error: Exception | None = None,
                 write_error: Exception | None = None, in_place: bool = False) -> None:
        self.unchanged = unchanged
        self.plan_error = plan_error
        self.load_error = load_error
        self.write_error = write_error
        self.in_place = in_place
        self.planned: list[OutputPlan] = []
        self.written: list[tuple[Path, dict[str, Any]]] = []
        self.undone: list[FileSignature] = []

    def check_inputs(self, job: Job) -> LiveAsset:
        if not self.unchanged:
            raise InputsChanged("the reference IMG_0001.HEIC changed or moved since the scan")
        return LiveAsset.from_dict(job.payload)

    def output_in_place(self, job: Job) -> bool:
        return self.in_place

    def plan(self, job: Job) -> OutputPlan:
        if self.plan_error is not None:
            raise self.plan_error
        if job.output is not None and job.output.mode == "replace":
            # the real planner names the backup after the target's content; there is no file
            asset = LiveAsset.from_dict(job.payload)
            assert asset.target is not None
            plan = plan_output(asset.target, job.output.root, job.output,
                               references=(asset.reference,), target_hash="blake3:" + "0" * 64)
        else:
            plan = plan_job_output(job)
        self.planned.append(plan)
        return plan

    def load(self, asset: LiveAsset, job: Job) -> LoadedInputs:
        if self.load_error is not None:
            raise self.load_error
        target = np.full((8, 8, 3), 0.5, np.float32)
        reference = np.full((16, 16, 3), 0.25, np.float32)
        return LoadedInputs(target, reference, None, asset.target or asset.reference)

    def write(self, plan: OutputPlan, job: Job, image: np.ndarray, like: Path,
              provenance: dict[str, Any], *, fence: Any = None) -> FileSignature:
        if self.write_error is not None:
            raise self.write_error
        if fence is not None:
            fence()  # raises FenceLost: nothing is written
        self.written.append((plan.destination, provenance))
        return self.WRITTEN

    def record_of(self, plan: OutputPlan, job: Job, written: FileSignature) -> str | None:
        return "/state/backups/record.lmd.json" if plan.kind == "replace" else None

    def undo(self, plan: OutputPlan, job: Job, written: FileSignature) -> bool:
        self.undone.append(written)
        return True

    def follow_records(self, store: Any) -> int:
        return 0


class Upscale:
    """A restorer that returns the target at the reference's size, recording each request."""

    name = "upscale"

    def __init__(self) -> None:
        self.requests: list[RestoreRequest] = []

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.requests.append(request)
        h, w = request.reference.shape[:2]
        reps = (h // request.target.shape[0], w // request.target.shape[1], 1)
        return RestoreResult(np.tile(request.target, reps), Diagnostics(tiles=1))


class Raising(Upscale):
    """A restorer whose every call raises `error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.requests.append(request)
        raise self.error


class UntilCancelled(Upscale):
    """A restorer that runs until its request is cancelled (the heartbeat cancels it), as a
    long restoration checks its cancel token between steps. `started` is set once it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def restore(self, request: RestoreRequest) -> RestoreResult:
        self.requests.append(request)
        self.started.set()
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            assert request.cancel is not None
            request.cancel.raise_if_cancelled()
            time.sleep(0.002)  # one "step" of work between cancellation checks
        raise AssertionError("the restoration was never cancelled")


def wait_for(condition: Any, what: str) -> None:
    """Poll `condition()` until true, failing after `DEADLINE_SECONDS`."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)
