"""What the worker needs from its collaborators, as protocols.

`WorkerStore` is the part of `daemon.store.JobStore` the worker calls, `JobFiles` the part of
the library and `daemon.output` it reads and writes through, `RestorerSource` where its
restorer comes from. The daemon passes the real ones; the outcome-table tests pass in-memory
fakes, so every way a job can end is checked in milliseconds without files or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core import Restorer
from core.video import ClipRestorer
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.output import Fence, OutputPlan
from daemon.store import Job, JobState
from daemon.store.states import WorkerState


class WorkerStore(Protocol):
    def requeue_expired(self) -> int: ...

    def is_paused(self) -> bool: ...

    def claim(self, worker_id: str, lease_seconds: float) -> Job | None: ...

    def heartbeat(
        self, job_id: int, worker_id: str, lease_seconds: float,
        progress: float | None = None, stage: str | None = None, *,
        generation: int | None = None,
    ) -> bool: ...

    def hold_lease(
        self, job_id: int, worker_id: str, generation: int, lease_seconds: float
    ) -> bool: ...

    def succeed(
        self, job_id: int, worker_id: str, output_path: str | None,
        output_signature: dict[str, Any] | None, provenance: dict[str, Any] | None, *,
        generation: int | None = None, kind: str | None = None, record: str | None = None,
        reason: str = "succeeded",
    ) -> None: ...

    def fail(
        self, job_id: int, worker_id: str, error: str, *, retryable: bool = True,
        generation: int | None = None,
    ) -> JobState | None: ...

    def defer(
        self, job_id: int, worker_id: str, reason: str, base_seconds: float, *,
        generation: int | None = None,
    ) -> datetime | None: ...

    def release(
        self, job_id: int, worker_id: str, reason: str, *, generation: int | None = None
    ) -> bool: ...

    def skip(
        self, job_id: int, reason: str, *, worker_id: str | None = None,
        generation: int | None = None,
    ) -> bool: ...

    def find_outputs(self, hashes: Iterable[str]) -> Mapping[str, Any]: ...

    def outputs_at(self, path: str) -> list[Any]: ...

    def records_to_follow(self) -> list[Any]: ...

    def record_followed(self, output_id: int, target: str) -> None: ...

    def upsert_worker(
        self, worker_id: str, *, state: WorkerState, hostname: str | None = None,
        pid: int | None = None, job_id: int | None = None, progress: float | None = None,
        stage: str | None = None, window: str | None = None, restorer: str | None = None,
        device: str | None = None,
    ) -> None: ...


@dataclass
class LoadedInputs:
    """The decoded pictures a restoration needs, and the file whose format the output takes."""

    target: np.ndarray
    reference: np.ndarray
    reference_lq: np.ndarray | None
    like: Path


class JobFiles(Protocol):
    def plan(self, job: Job) -> OutputPlan:
        """The job's destination, from its pinned output; `BadOutputPlan` when it cannot be
        planned."""
        ...

    def output_in_place(self, job: Job) -> bool:
        """Whether the output the job recorded is still in place and unchanged."""
        ...

    def check_inputs(self, job: Job) -> LiveAsset:
        """The asset to restore from (a replaced target read from its backed-up original);
        `InputsChanged` when the inputs are not what the job was enqueued for."""
        ...

    def load(self, asset: LiveAsset, job: Job) -> LoadedInputs:
        """Decode the inputs `check_inputs` gave for `job`, reading nothing outside its library
        and backups; `UnreadableFile` on bad input."""
        ...

    def write(
        self, plan: OutputPlan, job: Job, image: np.ndarray, like: Path,
        provenance: dict[str, Any], *, fence: Fence | None = None,
    ) -> FileSignature:
        """Write the restored image as planned, committing only if `fence()` (called
        immediately before the rename) does not raise; returns the written file's signature."""
        ...

    def record_of(self, plan: OutputPlan, job: Job, written: FileSignature) -> str | None:
        """The backup record of a replaced still whose output is `written` (for the index)."""
        ...

    def undo(self, plan: OutputPlan, job: Job, written: FileSignature) -> bool:
        """Take back `written` while the destination still holds it (its result could not be
        recorded); True when something was taken back."""
        ...

    def follow_records(self, store: WorkerStore) -> int:
        """Make the records of replaced stills that moved name their new paths."""
        ...


class RestorerSource(Protocol):
    @property
    def loaded(self) -> bool: ...

    def for_job(self, job: Job) -> Restorer:
        """The restorer to run `job` with; `WrongRestorer` when it cannot be the one the job was
        enqueued for."""
        ...

    def for_clip(
        self, name: str, options: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> ClipRestorer:
        """The clip restorer for a video job with `params`, kept between jobs; it may share the
        still restorer held for still jobs (`RestorerHolder.for_clip`)."""
        ...

    def used(self) -> None:
        """Note that the restorer just ran (for the idle unload)."""
        ...

    def drop(self) -> None:
        """Forget the model so its memory can be returned."""
        ...
