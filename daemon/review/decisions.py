"""A person's decisions on finished restorations: accept, reject, redo with another restorer.

`lmd review …` and the review page are two faces of this one service; both end in the store's
review operations (`daemon.store.review`), so they give the same answers.

- **accept** (an `awaiting` restoration of a job no newer one superseded: a superseded one's
  inputs changed since, so its restoration is stale): the staged still, checked against the
  digest recorded when it was staged, is published exactly as the job's pinned output says
  (tree, beside, or replace with backup) through the worker's writer (`LibraryFiles.write`),
  fenced on this decision's claim; then the job's output is recorded, the XMP sidecar written
  and hooks and viewers told, as if the worker had published it.
- **reject**: an `awaiting` restoration is discarded; a published one (review off) is reverted:
  replace mode puts the original back through `daemon.output.revert`, a sidecar output that is
  still lmd's own is removed (one someone edited since is refused). The job keeps its identity,
  so the next scan does not queue those inputs again; `reprocess` does.
- **redo**: reject, then queue the same inputs with another restorer (`enqueue_redo`: the
  rejected job stays current, so a later scan neither undoes the redo nor queues it again).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from core import hashing
from core.registry import available
from daemon.files.signature import FileSignature
from daemon.output import (
    Fence,
    FenceLost,
    OutputError,
    OutputPlan,
    RevertConflict,
    load_record,
    revert,
)
from daemon.review.layout import ReviewDirs
from daemon.review.previews import decode_png
from daemon.review.publishing import AfterPublish
from daemon.store import Job, JobStore
from daemon.store.review import Review, ReviewState

log = structlog.get_logger(__name__)


class ReviewRefused(Exception):
    """A decision that cannot be made; the message says why, for a person."""


class OutputFiles(Protocol):
    """The worker's writer (`daemon.worker.files.LibraryFiles`): plans a job's output from its
    row and writes it, `fence` checked immediately before the final rename."""

    def plan(self, job: Job) -> OutputPlan: ...

    def write(
        self, plan: OutputPlan, job: Job, image: np.ndarray, like: Path,
        provenance: dict[str, Any], *, fence: Fence | None = None,
    ) -> FileSignature: ...

    def record_of(self, plan: OutputPlan, job: Job, written: FileSignature) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Decided:
    job_id: int
    state: str
    message: str
    redo_job_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id, "state": self.state, "message": self.message,
            "redo_job_id": self.redo_job_id,
        }


class ReviewService:
    def __init__(
        self, settings: Any, store: JobStore, files: OutputFiles,
        after: AfterPublish | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.files = files
        self.dirs = ReviewDirs(settings.state_dir)
        self.after = after or AfterPublish(settings, store=store)

    # ---- reading -------------------------------------------------------------------------

    def list(self, state: str | None = None, flagged: bool | None = None) -> list[Review]:
        return self.store.list_reviews(state, flagged=flagged, limit=None)

    def get(self, job_id: int) -> Review | None:
        return self.store.get_review(job_id)

    def restorers_for(self, job: Job) -> list[str]:
        """Restorers a redo may use: every one lmd knows but the job's own (`livemoments`
        only with a checkpoint configured)."""
        names = [n for n in available() if n != job.restorer]
        if self.settings.restorer.checkpoint is None:
            names = [n for n in names if n != "livemoments"]
        return names

    # ---- decisions -----------------------------------------------------------------------

    def accept(self, job_id: int, by: str) -> Decided:
        token = secrets.token_hex(16)
        review = self._claim(job_id, {ReviewState.AWAITING}, token, "accept", current=True)
        job = review.job
        try:
            image = self._staged_image(review)
            plan = self.files.plan(job)
            provenance = {**(job.provenance or {}), "review": f"accepted by {by}"}
            signature = self.files.write(
                plan, job, image, self._like(review), provenance, fence=self._fence(job_id, token)
            )
        except Exception as exc:  # output, planning (the worker's own types) or staging errors
            self.store.release_review(job_id, token, note=f"accept failed: {exc}")
            raise ReviewRefused(f"job {job_id}: cannot publish: {exc}") from exc
        recorded = self.store.finish_review(
            job_id, token, ReviewState.ACCEPTED, decided_by=by,
            output=(str(plan.destination), signature.to_dict()), kind=plan.kind,
            record=self.files.record_of(plan, job, signature),
        )
        if not recorded:  # only a claim taken over as stale gets here
            raise ReviewRefused(f"job {job_id}: another decision took over; nothing recorded")
        h, w = image.shape[:2]
        self.after.write_sidecar(
            job, plan.destination, plan.kind, plan.backup, signature.content_hash, (w, h)
        )
        self.dirs.discard_staged(job_id)
        job_now = self.store.get_job(job_id)
        if job_now is not None:
            self.after.announce(job_now)
        log.info("review_accepted", job_id=job_id, by=by, path=str(plan.destination))
        return Decided(job_id, ReviewState.ACCEPTED.value, f"published {plan.destination}")

    def reject(self, job_id: int, by: str) -> Decided:
        token = secrets.token_hex(16)
        review = self._claim(job_id, {ReviewState.AWAITING, ReviewState.ACCEPTED}, token, "reject")
        message = self._withdraw(review, token)
        if not self.store.finish_review(
            job_id, token, ReviewState.REJECTED, decided_by=by, note=message, output=(None, None)
        ):
            raise ReviewRefused(f"job {job_id}: another decision took over; nothing recorded")
        self.dirs.discard_staged(job_id)
        log.info("review_rejected", job_id=job_id, by=by, result=message)
        return Decided(job_id, ReviewState.REJECTED.value, message)

    def redo(self, job_id: int, restorer: str, by: str) -> Decided:
        review = self.store.get_review(job_id)
        if review is None:
            raise ReviewRefused(self._why_not(job_id, "redo"))
        choices = self.restorers_for(review.job)
        if restorer not in choices:
            raise ReviewRefused(
                f"job {job_id}: cannot redo with {restorer!r}; choose one of "
                + (", ".join(choices) or "(none: no other restorer is available)")
            )
        spec = self._redo_spec(review.job, restorer)  # before anything changes: may refuse
        token = secrets.token_hex(16)
        review = self._claim(job_id, {ReviewState.AWAITING, ReviewState.ACCEPTED}, token, "redo")
        withdrawn = self._withdraw(review, token)
        new_id = self.store.enqueue_redo(spec, job_id)
        message = f"{withdrawn}; queued again with {restorer} as job {new_id}"
        if not self.store.finish_review(
            job_id, token, ReviewState.REJECTED, decided_by=by, note=message,
            output=(None, None), redo_job_id=new_id,
        ):
            raise ReviewRefused(f"job {job_id}: another decision took over; nothing recorded")
        self.dirs.discard_staged(job_id)
        log.info("review_redo", job_id=job_id, by=by, restorer=restorer, new_job_id=new_id)
        return Decided(job_id, ReviewState.REJECTED.value, message, new_id)

    def decide_many(self, action: str, job_ids: Iterable[int], by: str) -> list[Decided | str]:
        """`accept` or `reject` each job; a refusal is reported as its message and the others
        still go ahead."""
        decide = {"accept": self.accept, "reject": self.reject}[action]
        out: list[Decided | str] = []
        for job_id in job_ids:
            try:
                out.append(decide(job_id, by))
            except ReviewRefused as exc:
                out.append(str(exc))
        return out

    def close(self) -> None:
        self.after.close()

    # ---- helpers --------------------------------------------------------------------------

    def _claim(
        self, job_id: int, states: set[ReviewState], token: str, action: str,
        current: bool = False,
    ) -> Review:
        review = self.store.claim_review(job_id, states, token, current=current)
        if review is None:
            raise ReviewRefused(self._why_not(job_id, action))
        return review

    def _why_not(self, job_id: int, action: str) -> str:
        review = self.store.get_review(job_id)
        if review is None:
            job = self.store.get_job(job_id)
            if job is None:
                return f"job {job_id} does not exist"
            return f"job {job_id} is {job.state.value}: it has no finished restoration to {action}"
        if action == "accept" and review.superseded_by is not None:
            return (
                f"job {job_id} is superseded by job {review.superseded_by} (the photo changed "
                "since): its restoration is stale and cannot be accepted; reject it to discard it"
            )
        if review.claim is not None and review.state != ReviewState.REJECTED:
            return f"job {job_id}: another decision is being made right now"
        allowed = "awaiting" if action == "accept" else "awaiting or accepted"
        done = {"accept": "accepted", "reject": "rejected", "redo": "redone"}[action]
        return f"job {job_id} is already {review.state.value}; only {allowed} ones can be {done}"

    def _fence(self, job_id: int, token: str) -> Fence:
        def fence() -> None:
            if not self.store.review_claim_holds(job_id, token):
                raise FenceLost(f"job {job_id}: the decision was taken over; nothing written")

        return fence

    def _staged_image(self, review: Review) -> np.ndarray:
        staged = review.staged_signature or {}
        if not staged.get("file"):
            raise ReviewRefused(f"job {review.job_id}: nothing is staged")
        path = self.dirs.staged_file(review.job_id, staged["file"])
        if not path.is_file():
            raise ReviewRefused(f"job {review.job_id}: the staged still {path} is missing")
        if not hashing.matches(path, staged["content_hash"]):
            raise ReviewRefused(f"job {review.job_id}: the staged still changed since it was made")
        return decode_png(path)

    @staticmethod
    def _like(review: Review) -> Path:
        """The file whose format and metadata the output takes (as the worker chose it)."""
        payload = review.job.payload
        return Path(payload["target"] if review.like_role == "target" else payload["reference"])

    def _withdraw(self, review: Review, token: str) -> str:
        """Take a restoration back: nothing to do for a staged one; a published one is
        reverted. Refused (claim released) when that cannot be done safely."""
        if review.state == ReviewState.AWAITING:
            return "staged restoration discarded"
        try:
            return self._unpublish(review.job, self._fence(review.job_id, token))
        except (OutputError, ReviewRefused, OSError) as exc:
            self.store.release_review(review.job_id, token, note=f"revert failed: {exc}")
            raise ReviewRefused(f"job {review.job_id}: cannot revert: {exc}") from exc

    def _unpublish(self, job: Job, fence: Fence) -> str:
        """Take a published output back the way lmd takes its own writes back: the original
        put back by `revert` (replace mode), lmd's own file removed under its directory's lock
        (sidecars), with the XMP sidecar written for it; never a file someone changed since."""
        from daemon.worker.files import discard_output, write_root

        if not job.output_path or not job.output_signature:
            return "nothing was published"
        output = Path(job.output_path)
        written = FileSignature.from_dict(job.output_signature)
        plan = self.files.plan(job)
        if plan.kind == "replace":
            record = self.files.record_of(plan, job, written)
            if record is None:
                raise ReviewRefused(
                    f"no backup record names {output} as lmd's output (changed since, or "
                    "already put back with `lmd revert`)"
                )
            fence()
            try:
                outcome = revert(load_record(Path(record)))
            except RevertConflict as exc:
                raise ReviewRefused(str(exc)) from exc
            return f"original put back at {outcome.target}"
        if not output.exists():
            return f"output {output} was already gone"
        fence()
        if not discard_output(output, written, write_root(job, plan)):
            raise ReviewRefused(f"{output} changed since lmd wrote it; left as it is")
        _drop_sidecar(job, output)
        return f"output {output} removed"

    def _redo_spec(self, job: Job, restorer: str) -> Any:
        """The job for the same inputs with `restorer`, as a scan with that restorer configured
        would build it (`daemon.scanner.job_spec`: one recipe for identities)."""
        from daemon.library.asset import LiveAsset
        from daemon.restorer_config import configured_weights_digest
        from daemon.scanner import job_spec

        cfg = self.settings.restorer
        params = dict(cfg.params) if restorer == cfg.name else {}
        section = cfg.model_copy(update={"name": restorer, "params": params})
        settings = self.settings.model_copy(update={"restorer": section})
        try:
            weights = configured_weights_digest(settings, restorer)
        except Exception as exc:
            raise ReviewRefused(f"restorer {restorer} cannot be used: {exc}") from exc
        return job_spec(LiveAsset.from_dict(job.payload), settings, weights)


def open_review_service(settings: Any, store: JobStore) -> ReviewService:
    """The service with the worker's own writer (one home for writing outputs)."""
    from daemon.worker.files import LibraryFiles

    return ReviewService(settings, store, LibraryFiles(index=store))


def _drop_sidecar(job: Job, output: Path) -> None:
    """The XMP sidecar beside a removed sidecar-mode output (`[output] xmp_sidecar`; its name
    is the output's own, so it was written for it) goes with it: without its photo it would
    describe nothing, a lone file in the person's viewer."""
    from daemon.publish.xmp_sidecar import sidecar_path

    try:
        sidecar_path(output).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("xmp_sidecar_not_removed", job_id=job.id, path=str(output), error=str(exc))

