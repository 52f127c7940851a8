"""Running one claimed video job: a Live Photo's video restored frame by frame and written as
a movie that still pairs with its still.

The same contract as a still job (`daemon.worker.job.run_job`, whose outcome table applies row
for row, recorded by the same `JobAttempt`): the job row is the truth (the clip restorer, its
weights and parameters, the output), and the weights the restorer would load must be those the
job pinned (`WrongRestorer` otherwise); the output is planned before the first frame is
restored; every call on the job's behalf carries the lease generation it was claimed under, and
the rename commits through the fence. Frames stream from the decoder through the clip restorer
into the encoder, one at a time, so a clip is never held whole in memory; the heartbeat
publishes the stage and the fraction of frames done, and a cancellation (SIGTERM, pause, a lost
lease) is honoured between frames, leaving nothing in the library or the tree (the encoder's
temporary file is removed, the MOV untouched).

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

from core import CancelToken, RestoreError
from core.video import (
    ClipRequest,
    clip_weights_digest,
    restore_clip,
    validate_clip_params,
)
from daemon.files.errors import UnreadableFile
from daemon.library.asset import LiveAsset
from daemon.output import OutputError
from daemon.output.video import source_timing
from daemon.store import Job
from daemon.worker.job import LMD_VERSION, JobAttempt, JobContext, Outcome
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
    attempt = JobAttempt(job, ctx, cancel, bound, files.undo)
    beat = attempt.beat

    try:
        with beat:
            if attempt.output_in_place(files):
                return Outcome.SUCCEEDED
            source_asset = attempt.checked_inputs(files)
            if source_asset is None:
                return Outcome.SKIPPED
            plan = attempt.plan = files.plan(job)
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
                signature = files.write(plan, job, source_asset, frames_of, source,
                                        fence=attempt.fence)
            attempt.written.append(signature)
        ctx.restorers.used()
        provenance = video_provenance(job, asset, restorer.diagnostics, keyframe.index)
        provenance["seconds"] = round(time.monotonic() - started, 3)
        ctx.store.succeed(
            job.id, ctx.worker_id, str(plan.destination), signature.to_dict(), provenance,
            generation=generation, kind=plan.kind, record=files.record_of(plan, job, signature),
        )
        bound.info("job_succeeded", path=str(plan.destination), seconds=provenance["seconds"])
        return Outcome.SUCCEEDED
    except Exception as exc:  # every other way it ends: `run_job`'s table, one home
        return attempt.ended_by(exc)
