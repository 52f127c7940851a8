"""What happens once a restoration is published, wherever that happened (the worker, or a
person's accept): the XMP sidecar beside the output, and the word to hooks, Immich and
PhotoPrism (`daemon.publish.Publishers`).

One home for both, so a restoration published on accept is announced exactly like one the
worker published directly; a failed job is announced once it has failed for good. Nothing here
may fail a job or a decision: a sidecar that cannot be written and a publisher that raises are
logged.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import structlog

from daemon.publish.outbox import OutboxStore
from daemon.publish.outcome import JobOutcome
from daemon.publish.publishers import Publishers
from daemon.store import Job, JobState
from daemon.store.jobs import VIDEO

log = structlog.get_logger(__name__)


def output_mode(job: Job) -> str:
    """"sidecar-tree", "sidecar-beside" or "replace": the mode the job's output was pinned to."""
    if job.output is None:
        return "unknown"
    if job.output.mode == "replace":
        return "replace"
    return f"sidecar-{job.output.location}"


def original_of(job: Job) -> Path:
    """The file a job restored: a video job's video; a still job's target, else (the frame
    came from the video) its reference."""
    payload = job.payload
    if job.kind == VIDEO and payload.get("video"):
        return Path(payload["video"])
    return Path(payload.get("target") or payload["reference"])


def job_outcome(job: Job) -> JobOutcome:
    """The publishers' view of a finished job (`succeeded` or `failed`)."""
    failed = job.state == JobState.FAILED
    return JobOutcome(
        job_id=job.id,
        asset=job.asset_key,
        original=original_of(job),
        output=None if failed or not job.output_path else Path(job.output_path),
        mode=output_mode(job),
        event="failure" if failed else "success",
        error=job.last_error if failed else None,
        restorer=job.restorer,
        kind=job.kind,
    )


class AfterPublish:
    """The XMP sidecar and the publishers; the publishers' threads start on first use."""

    def __init__(
        self, settings: Any, publishers: Publishers | None = None,
        store: OutboxStore | None = None,
    ) -> None:
        self._settings = settings
        self._publishers = publishers
        self._store = store  # the job store: deliveries outlive the process (publish_outbox)
        self._lock = threading.Lock()

    def _get(self) -> Publishers:
        with self._lock:
            if self._publishers is None:
                s = self._settings
                library = Path(s.library) if s.library is not None else None
                self._publishers = Publishers.from_settings(s, library, store=self._store)
                self._publishers.start()
            return self._publishers

    @property
    def configured(self) -> bool:
        """Whether any hook or viewer is switched on (else announcing costs nothing)."""
        s = self._settings
        return (
            self._publishers is not None
            or s.hooks.on_success is not None
            or s.hooks.on_failure is not None
            or s.immich.url is not None
            or s.photoprism.url is not None
        )

    def resume(self) -> None:
        """Start the outboxes of hooks and viewers now when a job store keeps deliveries from
        an earlier run (a restart), instead of at the next job's publication."""
        if self._store is None or not self.configured:
            return
        try:
            self._get()
        except Exception as exc:  # a publisher that cannot be built is logged at publish too
            log.warning("publishers_not_resumed", error=str(exc))

    def write_sidecar(
        self, job: Job, destination: Path, kind: str, backup: Path | None,
        content_hash: str | None, size: tuple[int, int] | None,
    ) -> None:
        """`[output] xmp_sidecar`: NAME.ext.xmp beside the output, derived from the original
        (the backup of the replaced still in replace mode, where the sidecar that was there is
        kept beside the backup for `lmd revert`: `daemon.output.sidecar_keep`)."""
        if not self._settings.output.xmp_sidecar:
            return
        from daemon.output.sidecar_keep import keep_sidecar_before, note_sidecar_written
        from daemon.publish.xmp_sidecar import write_xmp_sidecar

        target = original_of(job)
        original = backup if kind == "replace" and backup is not None else target
        # replace mode: the target's own sidecar path; revert gives back what was there
        kept_by = backup if kind == "replace" else None
        try:
            before = keep_sidecar_before(kept_by, destination) if kept_by else False
            result = write_xmp_sidecar(
                destination, original, target=target, output_digest=content_hash,
                dimensions=size, restorer=job.restorer,
            )
            if kept_by is not None and result.written:
                note_sidecar_written(kept_by, destination, before)
        except Exception as exc:  # a sidecar must never fail the publication itself
            log.warning("xmp_sidecar_failed", job_id=job.id, path=str(destination), error=str(exc))
            return
        for problem in result.problems:
            log.warning("xmp_sidecar_problem", job_id=job.id, problem=problem)

    def announce(self, job: Job) -> None:
        """Tell hooks and viewers about a published or failed job; returns at once."""
        if not self.configured:
            return
        try:
            self._get().publish(job_outcome(job))
        except Exception as exc:
            log.warning("announce_failed", job_id=job.id, error=str(exc))

    def close(self, timeout: float = 5.0) -> None:
        """Stop the publishers, after up to `timeout` s each for hooks and deliveries still
        waiting: a short-lived command (`lmd review accept`, `lmd work`) must not exit with
        the word to Immich or PhotoPrism still in memory."""
        with self._lock:
            publishers, self._publishers = self._publishers, None
        if publishers is None:
            return
        for remote in (publishers.immich, publishers.photoprism):
            if remote is not None:
                remote.outbox.wait_idle(timeout)
        publishers.close(timeout)
