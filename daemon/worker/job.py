"""Running one claimed job: every way it can end has one explicit branch in `run_job`.

The job row is the truth: the restorer, its weights, its parameters and the output (mode,
location, quality) come from the job, never from the settings current when it runs. The output
is planned before the restoration starts, so a job that could never be written costs nothing.
Every call made on the job's behalf carries the lease generation it was claimed under, and the
write commits through a fence (`hold_lease`) checked immediately before its rename. In replace
mode a redo restores from the backed-up original, never from lmd's output in the library.

======================================  ==================================================
what happened                            outcome (store call)
======================================  ==================================================
restored and written                     SUCCEEDED (`succeed`: path, signature, provenance,
                                         and the output into the index, one transaction)
restored, held for review (staged)       SUCCEEDED (`succeed`: no output yet; see daemon.review)
its output already in place, unchanged   SUCCEEDED without restoring (a reprocess or retry
(and the job not forced)                 without --force has nothing to redo)
inputs changed since the scan (a         SKIPPED (`skip`; the next scan that sees consistent
touched file is re-read, not changed)    inputs queues it again, or enqueues the new inputs)
output cannot be planned, or never       FAILED before restoring (`fail`, not retryable)
written (read-only, name too long...)
restorer or weights not the job's        FAILED before restoring (`fail`, not retryable)
bad input (unreadable, corrupt)          FAILED at once, with the reason (not retryable)
the restorer refused the input           FAILED at once (`fail`, not retryable)
the write hit a permanent problem        FAILED (`fail`, not retryable)
no GPU / out of device memory            DEFERRED with backoff (`defer`; attempt handed back)
cancelled (SIGTERM, pause)               RELEASED back to pending (`release`)
lease lost (heartbeat refused, or        LEASE_LOST: nothing recorded; the job is someone
`succeed` found another owner)           else's now; a write already renamed into place is
                                         taken back (`undo`) unless a successor's replaced it
the fence refused the write (`FenceLost` LEASE_LOST: nothing was renamed into place, the
from `hold_lease` before the rename)     temporary file is gone; neither failed nor released
anything else                            RETRY (`fail`, retryable: pending after a backoff
                                         until the attempts run out, then failed)
======================================  ==================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from core import (
    Cancelled,
    CancelToken,
    DeviceUnavailable,
    OutOfDeviceMemory,
    RestoreError,
    RestoreRequest,
    restore,
)
from daemon.files.errors import UnreadableFile
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.output import FenceLost, OutputPlan, PermanentOutputError
from daemon.review.gate import FinishStep, PublishDirectly
from daemon.store import Job, LeaseLost
from daemon.worker.files import BadOutputPlan, InputsChanged
from daemon.worker.heartbeat import Heartbeat
from daemon.worker.interfaces import JobFiles, RestorerSource, WorkerStore
from daemon.worker.restorers import WrongRestorer

if TYPE_CHECKING:
    from daemon.worker.video_files import VideoFiles

log = structlog.get_logger(__name__)

LMD_VERSION = "0.1.0"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    SKIPPED = "skipped"
    FAILED = "failed"  # not retryable
    RETRY = "retry"  # a failed attempt; the store decides between pending and failed
    DEFERRED = "deferred"
    RELEASED = "released"
    LEASE_LOST = "lease-lost"


@dataclass
class JobContext:
    """What running a job needs besides the job: the store, the files, the restorer, the
    worker's timings, and callbacks into the worker loop."""

    store: WorkerStore
    files: JobFiles
    restorers: RestorerSource
    worker_id: str
    lease_seconds: float
    heartbeat_seconds: float
    defer_seconds: float
    #: called with the progress on every heartbeat (the worker publishes it for `lmd status`)
    on_progress: Callable[[float, str], None] = lambda fraction, stage: None
    #: called on every progress report of the restorer, on the job's thread (systemd watchdog)
    on_alive: Callable[[], None] = lambda: None
    #: asked on every heartbeat; a reason (e.g. "paused") cancels the job, which is released
    should_stop: Callable[[], str | None] = lambda: None
    #: what happens to a computed restoration (`daemon.review.gate`): written as planned, or
    #: checked and held in staging for a person
    review: FinishStep = field(default_factory=PublishDirectly)


Undo = Callable[[OutputPlan, Job, FileSignature], bool]
"""`JobFiles.undo`: take back a write whose result could not be recorded."""


class JobAttempt:
    """One claimed run of a job, of either kind (`run_job`, `daemon.worker.video_job`): its
    heartbeat, the lease generation every store call carries, the fence before the rename,
    what it planned and renamed into place, and how each way it can end is recorded (the
    module's table, `ended_by`). The two kinds differ in what they restore and write, not in
    how a job ends, so that has one home here."""

    def __init__(
        self, job: Job, ctx: JobContext, cancel: CancelToken, bound: Any, undo: Undo
    ) -> None:
        self.job, self.ctx, self.bound, self._undo = job, ctx, bound, undo
        self.generation = job.lease_generation
        self.beat = Heartbeat(
            ctx.store, job.id, ctx.worker_id, ctx.lease_seconds, ctx.heartbeat_seconds, cancel,
            on_beat=ctx.on_progress, should_stop=ctx.should_stop, generation=self.generation,
        )
        self.plan: OutputPlan | None = None
        self.written: list[FileSignature] = []  # what this attempt renamed into place

    def output_in_place(self, files: JobFiles | VideoFiles) -> bool:
        """Whether the job's recorded output is still in place and unchanged (and the job not
        forced): then it is recorded as succeeded without restoring."""
        job, ctx = self.job, self.ctx
        if job.force or not files.output_in_place(job):
            return False
        ctx.store.succeed(
            job.id, ctx.worker_id, job.output_path, job.output_signature, job.provenance,
            generation=self.generation,
            reason="output already in place and unchanged (reprocess --force redoes it)",
        )
        self.bound.info("job_output_in_place", path=job.output_path)
        return True

    def checked_inputs(self, files: JobFiles | VideoFiles) -> LiveAsset | None:
        """The asset to restore from, or None when the inputs changed since the scan: then
        the job is recorded as skipped (the next scan queues it again)."""
        job, ctx = self.job, self.ctx
        try:
            return files.check_inputs(job)
        except InputsChanged as exc:
            ctx.store.skip(job.id, f"{exc}; the next scan queues it again",
                           worker_id=ctx.worker_id, generation=self.generation)
            self.bound.info("job_skipped", reason=str(exc))
            return None

    def fail(self, error: str, retryable: bool) -> Outcome:
        self.ctx.store.fail(self.job.id, self.ctx.worker_id, error, retryable=retryable,
                            generation=self.generation)
        self.bound.warning("job_failed", error=error, retryable=retryable)
        return Outcome.RETRY if retryable else Outcome.FAILED

    def fence(self) -> None:
        """Immediately before the rename: commit only while this claim still holds the lease."""
        ctx = self.ctx
        if not ctx.store.hold_lease(self.job.id, ctx.worker_id, self.generation,
                                    ctx.lease_seconds):
            raise FenceLost(f"job {self.job.id} is no longer held by {ctx.worker_id} "
                            f"(claim {self.generation}); nothing was written")

    def ended_by(self, exc: Exception) -> Outcome:
        """Record the outcome of the attempt that `exc` ended (the table's rows after the
        restoration started)."""
        job, ctx, bound, generation = self.job, self.ctx, self.bound, self.generation
        if isinstance(exc, LeaseLost):
            # Another worker took the job while this one stalled (or a person cancelled it):
            # the job is theirs now. A write this attempt renamed into place is taken back while
            # it is still there (the original back in place of a replaced file), so the files
            # agree with the job row; a successor's output is left as it is.
            undone = (bool(self.written) and self.plan is not None
                      and self._undo(self.plan, job, self.written[-1]))
            bound.warning("job_lease_lost", write_undone=undone)
            return Outcome.LEASE_LOST
        if isinstance(exc, FenceLost):
            # the fence refused the rename: nothing of this attempt is in the library or tree
            bound.warning("job_lease_lost", error=str(exc))
            return Outcome.LEASE_LOST
        if isinstance(exc, Cancelled):
            if self.beat.lost:
                bound.info("job_released", reason="lease lost")
                return Outcome.LEASE_LOST
            reason = f"cancelled ({self.beat.stop_reason or 'stop'})"
            ctx.store.release(job.id, ctx.worker_id, reason, generation=generation)
            bound.info("job_released", reason=reason)
            return Outcome.RELEASED
        if isinstance(exc, DeviceUnavailable | OutOfDeviceMemory):
            ctx.restorers.drop()
            due = ctx.store.defer(
                job.id, ctx.worker_id, f"{type(exc).__name__}: {exc}", ctx.defer_seconds,
                generation=generation,
            )
            bound.warning("job_deferred", error=str(exc),
                          due=due.isoformat() if due else None)
            return Outcome.DEFERRED
        if isinstance(exc, BadOutputPlan | WrongRestorer | PermanentOutputError):
            return self.fail(str(exc), retryable=False)
        if isinstance(exc, UnreadableFile):
            return self.fail(f"unreadable input: {exc}", retryable=False)
        if isinstance(exc, RestoreError):
            return self.fail(f"restore failed: {exc}", retryable=False)
        # unexpected or an output error: retry later, keep the reason
        error = f"{type(exc).__name__}: {exc}"
        bound.error("job_attempt_failed", error=error, exc_info=exc)
        return self.fail(error, retryable=True)


def provenance_of(job: Job, asset: LiveAsset, diagnostics: Any) -> dict[str, Any]:
    """What the output's XMP and the job row say about how it was made: all from the job."""
    return {
        "restorer": job.restorer,
        "weights_digest": job.weights_digest,
        "params": dict(job.params or {}),
        "sources": {role: sig.content_hash for role, sig in asset.signatures.items()},
        "t0": asset.t0,
        "t1": asset.t1,
        "job_id": job.id,
        # the lease generation it was written under: tells an output a crash kept from being
        # recorded (a later claim) from a person's edit of a recorded one (`daemon.worker.records`)
        "claim": job.lease_generation,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "lmd_version": LMD_VERSION,
        "tiles": getattr(diagnostics, "tiles", None),
        "flow_confidence": getattr(diagnostics, "flow_confidence", None),
    }


def run_job(job: Job, ctx: JobContext, cancel: CancelToken) -> Outcome:
    """Run `job` (claimed by `ctx.worker_id`) to one of the outcomes in the module's table,
    and record it in the store."""
    asset = LiveAsset.from_dict(job.payload)
    bound = log.bind(job_id=job.id, asset=asset.key)
    started = time.monotonic()
    generation = job.lease_generation
    attempt = JobAttempt(job, ctx, cancel, bound, ctx.files.undo)
    beat = attempt.beat

    try:
        with beat:
            if attempt.output_in_place(ctx.files):
                return Outcome.SUCCEEDED
            source = attempt.checked_inputs(ctx.files)
            if source is None:
                return Outcome.SKIPPED
            plan = attempt.plan = ctx.files.plan(job)
            restorer = ctx.restorers.for_job(job)
            inputs = ctx.files.load(source, job)
            cancel.raise_if_cancelled()

            def progress(fraction: float, stage: str) -> None:
                beat.report(fraction, stage)
                ctx.on_alive()

            params = dict(job.params or {})
            request = RestoreRequest(
                target=inputs.target,
                reference=inputs.reference,
                reference_lq=inputs.reference_lq,
                restorer=job.restorer,
                params=params,
                progress=progress,
                cancel=cancel,
                seed=int(params.get("seed", 0)),
            )
            result = restore(request, restorer=restorer)
            ctx.restorers.used()
            cancel.raise_if_cancelled()
            beat.report(0.99, "writing")
            provenance = provenance_of(job, asset, result.diagnostics)

            def write(image: Any) -> FileSignature:
                signature = ctx.files.write(
                    plan, job, image, inputs.like, provenance, fence=attempt.fence
                )
                attempt.written.append(signature)
                return signature

            # face check, previews, then published as planned or held for review
            done = ctx.review.finish(job, plan, inputs, result, provenance, write)
        provenance["seconds"] = round(time.monotonic() - started, 3)
        written = attempt.written
        published = done.path is not None and bool(written)
        ctx.store.succeed(
            job.id, ctx.worker_id, done.path, done.signature, provenance,
            generation=generation, kind=plan.kind if published else None,
            record=ctx.files.record_of(plan, job, written[-1]) if published else None,
        )
        bound.info("job_succeeded", path=done.path, staged=done.staged,
                   seconds=provenance["seconds"])
        return Outcome.SUCCEEDED
    except Exception as exc:  # every other way it ends: one row of the table each
        return attempt.ended_by(exc)
