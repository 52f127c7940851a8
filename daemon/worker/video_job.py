"""Running one claimed video job: a Live Photo's video restored frame by frame and written as
a movie that still pairs with its still.

The same contract as a still job (`daemon.worker.job.run_job`, whose outcome table applies row
for row): the job row is the truth (the clip restorer, its weights and parameters, the
output), and the weights the restorer would load must be those the job pinned
(`WrongRestorer` otherwise); the output is planned before the first frame is restored; every
call on the job's behalf carries the lease generation it was claimed under, and the rename
commits through the fence. Frames stream from the decoder through the clip restorer into the
encoder, one at a time, so a clip is never held whole in memory; the heartbeat publishes the
stage and the fraction of frames done, and a cancellation (SIGTERM, pause, a lost lease) is
honoured between frames, leaving nothing in the library or the tree (the encoder's temporary
file is removed, the MOV untouched).

Video jobs have no review step: the restored clip is written as planned, and announced when the
loop ends the job (`ReviewGate.job_ended`: the hooks always, with `kind = "video"`; Immich and
PhotoPrism only where the MOV was replaced, `daemon.publish.publishers`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from core import Cancelled, CancelToken, DeviceUnavailable, OutOfDeviceMemory, RestoreError
from core.video import (
    ClipRequest,
    clip_weights_digest,
    restore_clip,
    validate_clip_params,
)
from daemon.files.errors import UnreadableFile
from daemon.files.signature import FileSignature
from daemon.library.asset import LiveAsset
from daemon.output import FenceLost, OutputError, OutputPlan, PermanentOutputError
from daemon.output.video import source_timing
from daemon.store import Job, LeaseLost
from daemon.worker.files import BadOutputPlan, InputsChanged
from daemon.worker.heartbeat import Heartbeat
from daemon.worker.job import LMD_VERSION, JobContext, Outcome
from daemon.worker.restorers import WrongRestorer
from daemon.worker.video_files import VideoFiles

log = structlog.get_logger(__name__)

#: share of the progress bar the frames take; the rest is the encoder's finish and the record
FRAMES_SHARE = 0.98


def video_provenance(
    job: Job, asset: LiveAsset, diagnostics: Any, key_index: int
) -> dict[str, Any]:
    """What the job row says about how the movie was made: all from the job, and the frame
    the key photo was aligned to (at T0, or matched where the video records no key time)."""
    fractions = list(getattr(diagnostics, "reference_fraction", []) or [])
    return {
        "kind": "video",
        "restorer": job.restorer,
        "weights_digest": job.weights_digest,
        "params": dict(job.params or {}),
        "sources": {role: sig.content_hash for role, sig in asset.signatures.items()
                    if role in ("reference", "video")},
        "t0": asset.t0,
        "key_frame": key_index,
        "job_id": job.id,
        "claim": job.lease_generation,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "lmd_version": LMD_VERSION,
        "frames": getattr(diagnostics, "frames", None),
        "reference_fraction": round(float(np.mean(fractions)), 4) if fractions else None,
    }


def run_video_job(
    job: Job, ctx: JobContext, cancel: CancelToken, files: VideoFiles | None = None,
    options: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run video `job` (claimed by `ctx.worker_id`) to one of `run_job`'s outcomes, and record
    it in the store. `options` go to the clip restorer's constructor (device and memory:
    `daemon.restorer_config.clip_restorer_options`); `files` replaces the real library and
    output tree (tests)."""
    files = files or VideoFiles(index=ctx.store)
    asset = LiveAsset.from_dict(job.payload)
    bound = log.bind(job_id=job.id, asset=asset.key, kind="video")
    started = time.monotonic()
    generation = job.lease_generation
    beat = Heartbeat(
        ctx.store, job.id, ctx.worker_id, ctx.lease_seconds, ctx.heartbeat_seconds, cancel,
        on_beat=ctx.on_progress, should_stop=ctx.should_stop, generation=generation,
    )
    written: list[FileSignature] = []
    plan: OutputPlan | None = None

    def fail(error: str, retryable: bool) -> Outcome:
        ctx.store.fail(job.id, ctx.worker_id, error, retryable=retryable, generation=generation)
        bound.warning("job_failed", error=error, retryable=retryable)
        return Outcome.RETRY if retryable else Outcome.FAILED

    def fence() -> None:
        """Immediately before the rename: commit only while this claim still holds the lease."""
        if not ctx.store.hold_lease(job.id, ctx.worker_id, generation, ctx.lease_seconds):
            raise FenceLost(f"job {job.id} is no longer held by {ctx.worker_id} "
                            f"(claim {generation}); nothing was written")

    try:
        with beat:
            if not job.force and files.output_in_place(job):
                ctx.store.succeed(
                    job.id, ctx.worker_id, job.output_path, job.output_signature,
                    job.provenance, generation=generation,
                    reason="output already in place and unchanged (reprocess --force redoes it)",
                )
                return Outcome.SUCCEEDED
            try:
                source_asset = files.check_inputs(job)
            except InputsChanged as exc:
                ctx.store.skip(job.id, f"{exc}; the next scan queues it again",
                               worker_id=ctx.worker_id, generation=generation)
                bound.info("job_skipped", reason=str(exc))
                return Outcome.SKIPPED
            plan = files.plan(job)
            params = dict(job.params or {})
            problems = validate_clip_params(job.restorer, params)
            if problems:
                raise RestoreError("; ".join(problems))
            configured = clip_weights_digest(job.restorer, params)
            if configured != job.weights_digest:
                raise WrongRestorer(
                    f"job {job.id} was enqueued for {job.restorer} weights "
                    f"{job.weights_digest}, but its checkpoint now is {configured}; the next "
                    "scan enqueues it for these weights"
                )
            restorer = ctx.restorers.for_clip(job.restorer, options or {}, params)
            with files.confined(job):
                source = files.source(source_asset)
                try:
                    timing = source_timing(source)
                except OutputError as exc:
                    raise UnreadableFile(str(exc)) from None
                times = [float(p * timing.time_base) for p in timing.pts]
                keyframe = files.keyframe(source_asset, times)
            cancel.raise_if_cancelled()

            def progress(fraction: float, stage: str) -> None:
                beat.report(FRAMES_SHARE * fraction, stage)
                ctx.on_alive()

            def frames_of(original: Path) -> Iterator[np.ndarray]:
                request = ClipRequest(
                    frames=files.frames(source_asset, original), keyframes=[keyframe],
                    restorer=job.restorer, frame_count=len(times), params=params,
                    progress=progress, cancel=cancel,
                )
                for frame in restore_clip(request, restorer=restorer):
                    cancel.raise_if_cancelled()
                    yield frame
                cancel.raise_if_cancelled()
                beat.report(FRAMES_SHARE, "writing")

            with files.confined(job):  # the frames are decoded as the encoder takes them
                signature = files.write(plan, job, source_asset, frames_of, source, fence=fence)
            written.append(signature)
        ctx.restorers.used()
        provenance = video_provenance(job, asset, restorer.diagnostics, keyframe.index)
        provenance["seconds"] = round(time.monotonic() - started, 3)
        ctx.store.succeed(
            job.id, ctx.worker_id, str(plan.destination), signature.to_dict(), provenance,
            generation=generation, kind=plan.kind, record=files.record_of(plan, signature),
        )
        bound.info("job_succeeded", path=str(plan.destination), seconds=provenance["seconds"])
        return Outcome.SUCCEEDED
    except LeaseLost:
        undone = bool(written) and plan is not None and files.undo(plan, job, written[-1])
        bound.warning("job_lease_lost", write_undone=undone)
        return Outcome.LEASE_LOST
    except FenceLost as exc:
        bound.warning("job_lease_lost", error=str(exc))
        return Outcome.LEASE_LOST
    except Cancelled:
        if beat.lost:
            bound.info("job_released", reason="lease lost")
            return Outcome.LEASE_LOST
        reason = f"cancelled ({beat.stop_reason or 'stop'})"
        ctx.store.release(job.id, ctx.worker_id, reason, generation=generation)
        bound.info("job_released", reason=reason)
        return Outcome.RELEASED
    except (DeviceUnavailable, OutOfDeviceMemory) as exc:
        ctx.restorers.drop()
        due = ctx.store.defer(
            job.id, ctx.worker_id, f"{type(exc).__name__}: {exc}", ctx.defer_seconds,
            generation=generation,
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
