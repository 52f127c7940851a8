"""Running one claimed job: every way it can end has one explicit branch in `run_job`.

The job row is the truth: the restorer, its weights, its parameters and the output (mode,
location, quality) come from the job, never from the settings current when it runs. The output
is planned before the restoration starts, so a job that could never be written costs nothing.

======================================  ==================================================
what happened                            outcome (store call)
======================================  ==================================================
restored and written                     SUCCEEDED (`succeed`: path, signature, provenance)
restored, held for review (staged)       SUCCEEDED (`succeed`: no output yet; see daemon.review)
inputs changed since the scan            SKIPPED (`skip`; the next scan enqueues new inputs)
output cannot be planned, or never       FAILED before restoring (`fail`, not retryable)
written (read-only, name too long...)
restorer or weights not the job's        FAILED before restoring (`fail`, not retryable)
bad input (unreadable, corrupt)          FAILED at once, with the reason (not retryable)
the restorer refused the input           FAILED at once (`fail`, not retryable)
the write hit a permanent problem        FAILED (`fail`, not retryable)
no GPU / out of device memory            DEFERRED with backoff (`defer`; attempt handed back)
cancelled (SIGTERM, pause)               RELEASED back to pending (`release`)
lease lost (heartbeat refused, or        LEASE_LOST: nothing recorded; the job is someone
`succeed` found another owner)           else's now
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
from typing import Any

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
from daemon.library.asset import LiveAsset
from daemon.output import PermanentOutputError
from daemon.review.gate import FinishStep, PublishDirectly
from daemon.store import Job, LeaseLost
from daemon.worker.files import BadOutputPlan
from daemon.worker.heartbeat import Heartbeat
from daemon.worker.interfaces import JobFiles, RestorerSource, WorkerStore
from daemon.worker.restorers import WrongRestorer

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
    beat = Heartbeat(
        ctx.store, job.id, ctx.worker_id, ctx.lease_seconds, ctx.heartbeat_seconds, cancel,
        on_beat=ctx.on_progress, should_stop=ctx.should_stop,
    )

    def fail(error: str, retryable: bool) -> Outcome:
        ctx.store.fail(job.id, ctx.worker_id, error, retryable=retryable)
        bound.warning("job_failed", error=error, retryable=retryable)
        return Outcome.RETRY if retryable else Outcome.FAILED

    try:
        with beat:
            if not ctx.files.inputs_unchanged(asset):
                ctx.store.skip(job.id, "inputs changed since the scan; rescan will requeue")
                bound.info("job_skipped", reason="inputs changed")
                return Outcome.SKIPPED
            plan = ctx.files.plan(job)
            restorer = ctx.restorers.for_job(job)
            inputs = ctx.files.load(asset)
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
            # face check, previews, then published as planned or held for review
            done = ctx.review.finish(
                job, plan, inputs, result, provenance,
                lambda image: ctx.files.write(plan, job, image, inputs.like, provenance),
            )
        provenance["seconds"] = round(time.monotonic() - started, 3)
        ctx.store.succeed(job.id, ctx.worker_id, done.path, done.signature, provenance)
        bound.info("job_succeeded", path=done.path, staged=done.staged,
                   seconds=provenance["seconds"])
        return Outcome.SUCCEEDED
    except LeaseLost:
        # Another worker took the job while this one stalled (or a person cancelled it): the
        # job is theirs now, whatever was written is overwritten or discarded by them.
        bound.warning("job_lease_lost")
        return Outcome.LEASE_LOST
    except Cancelled:
        if beat.lost:
            bound.info("job_released", reason="lease lost")
            return Outcome.LEASE_LOST
        reason = f"cancelled ({beat.stop_reason or 'stop'})"
        ctx.store.release(job.id, ctx.worker_id, reason)
        bound.info("job_released", reason=reason)
        return Outcome.RELEASED
    except (DeviceUnavailable, OutOfDeviceMemory) as exc:
        ctx.restorers.drop()
        due = ctx.store.defer(
            job.id, ctx.worker_id, f"{type(exc).__name__}: {exc}", ctx.defer_seconds
        )
        bound.warning("job_deferred", error=str(exc), due=due.isoformat() if due else None)
        return Outcome.DEFERRED
    except (BadOutputPlan, WrongRestorer, PermanentOutputError) as exc:
        return fail(str(exc), retryable=False)
    except UnreadableFile as exc:
        return fail(f"unreadable input: {exc}", retryable=False)
    except RestoreError as exc:
        return fail(f"restore failed: {exc}", retryable=False)
    except Exception as exc:  # unexpected or an output error: retry later, keep the reason
        error = f"{type(exc).__name__}: {exc}"
        bound.error("job_attempt_failed", error=error, exc_info=True)
        return fail(error, retryable=True)
