"""The worker's one call once a restoration is computed: check it, and publish or stage it.

`run_job` hands every finished restoration to `JobContext.review.finish(...)` with a `write`
function that writes an image as the job's output was planned. `PublishDirectly` (the default,
for tests and embedders) only writes. `ReviewGate` (the daemon's) first

- compares each face of the frame with the restoration (`core.faces.check_identity`); where a
  face drifted and the restorer is `guided`, the frame's own content is put back inside that
  face (`fall_back_inside_faces`);
- notes why a person should look: identity drift, or a flow confidence below
  `[review] min_flow_confidence` (how much of the reference could be aligned at all);
- makes the page's previews and comparison strip (`previews.make_previews`);

then holds the restoration in staging (`<state_dir>/review/staging/`) when review is required,
a face drifted, or the flow confidence is low for a restorer that does not blend by it, and
otherwise writes it, with its XMP sidecar. Either way it records the review row before the
worker records the job's success, so a succeeded job always has one. The publishers are told
after the job's success is recorded (`job_ended`).

Why low flow confidence holds `livemoments` but only flags `guided`: guided blends the
reference's detail in by the flow's confidence and keeps the frame's own content where the
alignment is not trusted, so its low-confidence result is close to the upscaled frame (safe,
just not much better); a generative restorer with little aligned reference has nothing to
anchor its detail to, which is where invention starts. Both show the flag on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import structlog

from daemon.files.signature import FileSignature
from daemon.output import OutputPlan, atomic_write_bytes
from daemon.publish.publishers import Publishers
from daemon.review.layout import ReviewDirs
from daemon.review.previews import (
    PREVIEW_MAX_SIDE,
    as_uint8,
    encode,
    fit_within,
    frame_window,
    make_previews,
)
from daemon.review.publishing import AfterPublish
from daemon.store import Job, JobState, JobStore
from daemon.store.jobs import VIDEO

log = structlog.get_logger(__name__)

Write = Callable[[np.ndarray], FileSignature]
"""Writes an image as the job's output was planned; returns the written file's signature."""


@dataclass(frozen=True, slots=True)
class Finished:
    """What the worker records: the published output (`path`, `signature`), or nothing yet
    when the restoration waits in staging (`staged`)."""

    path: str | None
    signature: dict[str, Any] | None
    staged: bool = False


def published(plan: OutputPlan, signature: FileSignature) -> Finished:
    """`Finished` for an output written as `plan` says."""
    return Finished(str(plan.destination), signature.to_dict())


class InputsLike(Protocol):
    target: np.ndarray
    reference: np.ndarray
    like: Any


class ResultLike(Protocol):
    image: np.ndarray
    diagnostics: Any


class FinishStep(Protocol):
    def finish(
        self, job: Job, plan: OutputPlan, inputs: InputsLike, result: ResultLike,
        provenance: dict[str, Any], write: Write,
    ) -> Finished: ...

    def job_ended(self, job_id: int, outcome: str) -> None: ...

    def close(self) -> None: ...


class PublishDirectly:
    """No checks, no review: write the restoration as planned."""

    def finish(
        self, job: Job, plan: OutputPlan, inputs: InputsLike, result: ResultLike,
        provenance: dict[str, Any], write: Write,
    ) -> Finished:
        return published(plan, write(result.image))

    def job_ended(self, job_id: int, outcome: str) -> None:
        return None

    def close(self) -> None:
        return None


FACE_CHECK_MAX_SIDE = PREVIEW_MAX_SIDE
"""Faces are compared with both pictures within this size. The evidence of a face is the
video frame's (≤ 1920 px on phones; Apple's edited still is that frame upscaled), so nothing
is lost, and a 108 MP still is never converted to float whole for the check."""


def _same_scale(frame: np.ndarray, like: np.ndarray) -> np.ndarray:
    """`frame` in `like`'s convention: uint8, or float32 in [0, 1]."""
    if like.dtype == np.uint8:
        return as_uint8(frame)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    if frame.dtype == np.uint16:
        return frame.astype(np.float32) / 65535.0
    return frame.astype(np.float32, copy=False)


def face_check(frame: np.ndarray, restored: np.ndarray) -> dict[str, Any]:
    """The face check as the review row keeps it: boxes in the restored still's pixels, with
    its size; a check that breaks says so instead of failing the job."""
    from core.faces import check_identity

    h, w = restored.shape[:2]
    small = fit_within(restored, FACE_CHECK_MAX_SIDE)
    try:
        check = check_identity(fit_within(frame, FACE_CHECK_MAX_SIDE), small)
    except Exception as exc:  # a bug or bad pixels in the guard must not lose a restoration
        log.warning("face_check_failed", error=str(exc))
        return {"status": "not_available", "reason": f"face check failed: {exc}", "faces": []}
    out = {**check.to_dict(), "size": [int(w), int(h)]}
    sx, sy = w / small.shape[1], h / small.shape[0]
    for face in out["faces"]:
        left, top, right, bottom = face["box"]
        face["box"] = [int(np.floor(left * sx)), int(np.floor(top * sy)),
                       min(w, int(np.ceil(right * sx))), min(h, int(np.ceil(bottom * sy)))]
    return out


def keep_frame_faces(
    frame: np.ndarray, restored: np.ndarray, check: dict[str, Any]
) -> np.ndarray:
    """`guided`'s answer to identity drift: the frame's own content inside each drifting face,
    computed in a window around each face only (the mask is zero elsewhere)."""
    from core.faces import DRIFT_THRESHOLD, FaceCheck, FaceComparison, fall_back_inside_faces

    out = restored.copy()
    frame = _same_scale(frame, restored)
    h, w = restored.shape[:2]
    for face in check["faces"]:
        if not face["drift"]:
            continue
        left, top, right, bottom = face["box"]
        # the feathered ellipse reaches (0.5 + margin) box sizes plus two sigmas from the
        # centre and its blur three sigmas more: a whole box size beyond each edge covers it
        bw, bh = right - left, bottom - top
        x0, y0 = max(0, left - bw), max(0, top - bh)
        x1, y1 = min(w, right + bw), min(h, bottom + bh)
        window = out[y0:y1, x0:x1]
        upscaled = frame_window(frame, (w, h), x0, y0, x1 - x0, y1 - y0)
        local = FaceComparison(
            box=(left - x0, top - y0, right - x0, bottom - y0), distance=face["distance"],
            drift=True,
        )
        verdict = FaceCheck("drift", check.get("threshold", DRIFT_THRESHOLD), (local,))
        out[y0:y1, x0:x1] = fall_back_inside_faces(window, upscaled, verdict)
    return out


BLENDS_BY_CONFIDENCE = frozenset({"guided"})
"""Restorers that keep the frame's own content where the flow is not trusted (see above)."""


class ReviewGate:
    """The daemon's `FinishStep`: face check, previews, then staging or publishing."""

    def __init__(
        self, settings: Any, store: JobStore, publishers: Publishers | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.dirs = ReviewDirs(settings.state_dir)
        self.after = AfterPublish(settings, publishers, store=store)
        self.after.resume()  # deliveries an earlier run left in the outbox

    def reasons_to_look(self, check: dict[str, Any], flow_confidence: float | None) -> list[str]:
        flags = []
        if check.get("status") == "drift":
            flags.append("identity drift")
        least = self.settings.review.min_flow_confidence
        if flow_confidence is not None and least > 0 and flow_confidence < least:
            flags.append(f"low flow confidence ({flow_confidence:.2f})")
        return flags

    def finish(
        self, job: Job, plan: OutputPlan, inputs: InputsLike, result: ResultLike,
        provenance: dict[str, Any], write: Write,
    ) -> Finished:
        image = result.image
        check = face_check(inputs.target, image)
        if check["status"] == "drift" and job.restorer == "guided":
            image = keep_frame_faces(inputs.target, image, check)
            check["fallback"] = "the frame's own content inside each drifting face"
        provenance["face_check"] = check["status"]
        flow = getattr(result.diagnostics, "flow_confidence", None)
        flow = None if flow is None else float(flow)
        flags = self.reasons_to_look(check, flow)
        hold = (
            self.settings.review.required
            or check["status"] == "drift"
            or (bool(flags) and job.restorer not in BLENDS_BY_CONFIDENCE)
        )
        try:
            make_previews(self.dirs, job.id, inputs.target, image, inputs.reference)
        except Exception as exc:  # the page shows "no preview"; the restoration stands
            log.warning("previews_failed", job_id=job.id, error=str(exc))
        like_role = "target" if job.payload.get("target") else "reference"
        common = {
            "flags": flags, "face_check": check, "flow_confidence": flow,
            "like_role": like_role, "worker": job.lease_owner,
        }
        if hold:
            staged = self.dirs.new_staged_file(job.id)
            signature = atomic_write_bytes(
                staged, encode(as_uint8(image), ".png"), create_dirs=True, mode=0o600
            )
            self.store.record_review(
                job.id, staged=True, staged_signature={"file": staged.name, **signature.to_dict()},
                **common,
            )
            self.dirs.discard_staged(job.id, keep=staged.name)
            log.info("job_staged", job_id=job.id, flags=flags or ["review required"])
            return Finished(None, None, staged=True)
        signature = write(image)
        h, w = image.shape[:2]
        self.after.write_sidecar(
            job, plan.destination, plan.kind, plan.backup, signature.content_hash, (w, h)
        )
        self.store.record_review(job.id, staged=False, staged_signature=None, **common)
        self.dirs.discard_staged(job.id)
        return published(plan, signature)

    def job_ended(self, job_id: int, outcome: str) -> None:
        """After `run_job` ended with `outcome` (a `daemon.worker.Outcome` value): announce a
        restoration this run published, or a job that has now failed for good."""
        if not self.after.configured or outcome not in {"succeeded", "failed", "retry"}:
            return
        job = self.store.get_job(job_id)
        if job is None:
            return
        if outcome == "succeeded":
            if job.state != JobState.SUCCEEDED:
                return
            if job.kind != VIDEO:  # a video job has no review step: written as planned
                review = self.store.get_review(job_id)
                if review is None or review.staged:
                    return  # a staged restoration is announced when a person accepts it
        elif job.state != JobState.FAILED:
            return  # a failed attempt that will be retried
        self.after.announce(job)

    def close(self) -> None:
        self.after.close()
