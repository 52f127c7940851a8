"""The worker: the one place where the library, the store, `core` and the output writer meet.

A worker claims one job at a time under a lease, keeps the lease alive from a heartbeat
thread, runs the configured restorer, writes the result through `daemon.output`, and records
the outcome. Every way a job can end has one explicit branch in `_run_claimed`:

* restored and written            → succeeded (output path, signature, provenance)
* inputs changed since the scan   → skipped (the next scan enqueues a job for the new inputs)
* bad input (unreadable, corrupt) → failed at once, with the reason (retrying cannot help)
* no GPU / out of device memory   → deferred with backoff (does not burn an attempt)
* cancelled (SIGTERM, pause, lost lease) → released back to pending
* anything else                   → failed attempt; retried with backoff until attempts run out
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from core import (
    Cancelled,
    CancelToken,
    DeviceUnavailable,
    OutOfDeviceMemory,
    RestoreError,
    Restorer,
    RestoreRequest,
    get_restorer,
    restore,
)
from daemon.files.errors import UnreadableFile
from daemon.library.asset import FileSignature, LiveAsset
from daemon.library.media import decode_frame_at, load_still
from daemon.library.naming import edited_name
from daemon.output import commit_replace, plan_output, signature_of, write_image
from daemon.scheduler import describe_windows, in_windows
from daemon.settings import Settings
from daemon.store import Job, JobStore, LeaseLost
from daemon.store.states import WorkerState

log = structlog.get_logger(__name__)

LMD_VERSION = "0.1.0"
#: An idle worker refreshes its row this often, so `lmd status` can tell a dead one (no
#: refresh for several periods) from one that is merely waiting.
WORKER_REFRESH_SECONDS = 60.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def restorer_options(settings: Settings) -> dict[str, Any]:
    """Constructor options for the configured restorer (the guided one takes none)."""
    cfg = settings.restorer
    if cfg.name == "livemoments":
        return {
            "checkpoint": cfg.checkpoint,
            "device": cfg.device,
            "low_memory": cfg.low_memory,
            "compile": cfg.compile,
        }
    return {}


def weights_digest(settings: Settings) -> str:
    """Identifies the model weights in job identities ("none" for weight-free restorers)."""
    if settings.restorer.name == "livemoments" and settings.restorer.checkpoint:
        from core.livemoments.digest import weights_digest as digest

        return digest(Path(settings.restorer.checkpoint))
    return "none"


def input_signatures_match(asset: LiveAsset) -> bool:
    """Cheap check that the inputs still have the size and mtime the scan saw."""
    paths = {"reference": asset.reference, "video": asset.video, "target": asset.target}
    for role, signature in asset.signatures.items():
        path = paths.get(role)
        if path is None:
            continue
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != signature.size or st.st_mtime_ns != signature.mtime_ns:
            return False
    return True


@dataclass
class LoadedInputs:
    target: np.ndarray
    reference: np.ndarray
    reference_lq: np.ndarray | None
    like: Path


def load_inputs(asset: LiveAsset) -> LoadedInputs:
    """Decode what the restorer needs; raises `UnreadableFile` with a reason on bad input."""
    reference = load_still(asset.reference)
    if asset.target is not None:
        target = load_still(asset.target)
        like = asset.target
    elif asset.video is not None and asset.t1 is not None:
        target = decode_frame_at(
            asset.video, asset.t1, offset=asset.video_offset, length=asset.video_length
        )
        like = asset.reference
    else:
        raise UnreadableFile("asset has neither a target still nor a video frame time")
    reference_lq = None
    if asset.video is not None and asset.t0 is not None:
        reference_lq = decode_frame_at(
            asset.video, asset.t0, offset=asset.video_offset, length=asset.video_length
        )
    return LoadedInputs(target, reference, reference_lq, like)


class Heartbeat:
    """Renews a job's lease every few seconds on its own thread while the job runs.

    Progress reported by the restorer is passed along with the next beat (and at most that
    often), so `lmd status` shows it without a database write per diffusion step. A lost
    lease (another worker took the job after we stalled) cancels the restoration.
    """

    def __init__(
        self, store: JobStore, job_id: int, worker_id: str, lease: float, every: float,
        cancel: CancelToken, on_beat: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], str | None] | None = None,
    ) -> None:
        self._store, self._job_id, self._worker_id = store, job_id, worker_id
        self._lease, self._every, self._cancel = lease, every, cancel
        self._on_beat = on_beat
        self._should_stop = should_stop or (lambda: None)
        self._stop = threading.Event()
        self.stop_reason: str | None = None
        self.progress: float = 0.0
        self.stage: str = "starting"
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)

    def report(self, fraction: float, stage: str) -> None:
        self.progress, self.stage = float(fraction), stage

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                alive = self._store.heartbeat(
                    self._job_id, self._worker_id, self._lease,
                    progress=self.progress, stage=self.stage,
                )
            except Exception as exc:  # a database hiccup: keep trying until the lease runs out
                log.warning("heartbeat_failed", job_id=self._job_id, error=str(exc))
                continue
            if not alive:
                self.lost = True
                log.warning("lease_lost", job_id=self._job_id)
                self._cancel.cancel()
                return
            reason = self._should_stop()
            if reason:
                self.stop_reason = reason
                self._cancel.cancel()
                return
            if self._on_beat:
                self._on_beat(self.progress, self.stage)


class Worker:
    """Claims and runs jobs until told to stop. One per device."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        worker_id: str | None = None,
        on_alive: Callable[[], None] | None = None,
        restorer: Restorer | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.worker_id = worker_id or settings.worker.id or default_worker_id()
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self._on_alive = on_alive or (lambda: None)
        self._current_cancel: CancelToken | None = None
        self._restorer: Any = restorer  # None: built from settings on first use
        self._restorer_last_used = 0.0
        self._state = WorkerState.STARTING
        self._published_at = 0.0

    # ----------------------------------------------------------------- control from outside
    def request_stop(self) -> None:
        """SIGTERM: stop claiming, cancel the running job between steps (it is released)."""
        self.stop_event.set()
        self.wake_event.set()
        if self._current_cancel is not None:
            self._current_cancel.cancel()

    def wake(self) -> None:
        self.wake_event.set()

    @property
    def model_loaded(self) -> bool:
        """Whether a restorer (and so, for `livemoments`, its weights) is held in memory."""
        return self._restorer is not None

    # ----------------------------------------------------------------------- the main loop
    def run_forever(self) -> None:
        self._publish(WorkerState.IDLE)
        while not self.stop_event.is_set():
            self._on_alive()
            ran = self.run_once()
            if not ran:
                self._maybe_unload()
                self.wake_event.wait(self.settings.worker.poll_seconds)
                self.wake_event.clear()
        self._publish(WorkerState.STOPPED)

    def run_until_empty(self, max_jobs: int | None = None) -> int:
        """Run claimable jobs now, windows ignored, until none is left (`lmd work`, `lmd demo`)."""
        done = 0
        while not self.stop_event.is_set() and (max_jobs is None or done < max_jobs):
            if not self.run_once(ignore_windows=True):
                break
            done += 1
        self._publish(WorkerState.IDLE)
        return done

    def run_once(self, ignore_windows: bool = False) -> bool:
        """Claim and run one job; False when nothing was claimable (or not allowed now)."""
        self.store.requeue_expired()
        if self.store.is_paused():
            self._publish(WorkerState.PAUSED)
            return False
        windows = self.settings.worker.windows
        if not ignore_windows and not in_windows(windows, datetime.now().astimezone()):
            self._publish(WorkerState.OUTSIDE_WINDOW)
            return False
        job = self.store.claim(self.worker_id, self.settings.worker.lease_seconds)
        if job is None:
            self._publish(WorkerState.IDLE)
            return False
        self._run_claimed(job)
        return True

    # ------------------------------------------------------------------------ one job
    def _run_claimed(self, job: Job) -> None:
        asset = LiveAsset.from_dict(job.payload)
        bound = log.bind(job_id=job.id, asset=asset.key)
        cancel = CancelToken()
        self._current_cancel = cancel
        if self.stop_event.is_set():
            cancel.cancel()
        self._publish(WorkerState.RUNNING, job_id=job.id, progress=0.0, stage="loading")
        started = time.monotonic()
        beat = Heartbeat(
            self.store, job.id, self.worker_id, self.settings.worker.lease_seconds,
            self.settings.worker.heartbeat_seconds, cancel,
            on_beat=lambda fraction, stage: self._publish(
                WorkerState.RUNNING, job_id=job.id, progress=fraction, stage=stage
            ),
            should_stop=lambda: "paused" if self.store.is_paused() else None,
        )
        try:
            with beat:
                if not input_signatures_match(asset):
                    self.store.skip(job.id, "inputs changed since the scan; rescan will requeue")
                    bound.info("job_skipped", reason="inputs changed")
                    return
                inputs = load_inputs(asset)
                cancel.raise_if_cancelled()

                def progress(fraction: float, stage: str) -> None:
                    beat.report(fraction, stage)
                    self._on_alive()

                restorer_params = dict((job.params or {}).get("restorer", {}))
                request = RestoreRequest(
                    target=inputs.target,
                    reference=inputs.reference,
                    reference_lq=inputs.reference_lq,
                    restorer=self.settings.restorer.name,
                    params=restorer_params,
                    progress=progress,
                    cancel=cancel,
                    seed=int(restorer_params.get("seed", 0)),
                )
                result = restore(request, restorer=self._restorer_instance())
                self._restorer_last_used = time.monotonic()
                cancel.raise_if_cancelled()
                beat.report(0.99, "writing")
                provenance = self._provenance(job, asset, result.diagnostics)
                path, signature = self._write_output(job, asset, result.image, inputs.like,
                                                     provenance)
            provenance["seconds"] = round(time.monotonic() - started, 3)
            self.store.succeed(job.id, self.worker_id, str(path), signature.to_dict(), provenance)
            bound.info("job_succeeded", path=str(path), seconds=provenance["seconds"])
        except LeaseLost:
            # Another worker took the job while this one stalled (or a person cancelled it):
            # the job is theirs now, whatever was written is overwritten or discarded by them.
            bound.warning("job_lease_lost")
        except Cancelled:
            reason = "lease lost" if beat.lost else f"cancelled ({beat.stop_reason or 'stop'})"
            if not beat.lost:
                self.store.release(job.id, self.worker_id, reason)
            bound.info("job_released", reason=reason)
        except (DeviceUnavailable, OutOfDeviceMemory) as exc:
            self._drop_restorer()
            # the store backs off from worker.defer_seconds by the job's earlier deferrals
            due = self.store.defer(
                job.id, self.worker_id, f"{type(exc).__name__}: {exc}",
                self.settings.worker.defer_seconds,
            )
            bound.warning("job_deferred", error=str(exc), due=due.isoformat() if due else None)
        except UnreadableFile as exc:
            self.store.fail(job.id, self.worker_id, f"unreadable input: {exc}", retryable=False)
            bound.warning("job_failed", error=str(exc), retryable=False)
        except RestoreError as exc:
            self.store.fail(job.id, self.worker_id, f"restore failed: {exc}", retryable=False)
            bound.warning("job_failed", error=str(exc), retryable=False)
        except Exception as exc:  # unexpected or an output error: retry later, keep the reason
            error = f"{type(exc).__name__}: {exc}"
            self.store.fail(job.id, self.worker_id, error, retryable=True)
            bound.error("job_attempt_failed", error=error, exc_info=True)
        finally:
            self._current_cancel = None
            self._publish(WorkerState.IDLE)

    # ------------------------------------------------------------------------- helpers
    def _write_output(
        self, job: Job, asset: LiveAsset, image: np.ndarray, like: Path,
        provenance: dict[str, Any],
    ) -> tuple[Path, FileSignature]:
        """Sidecar or replace, as configured; replace mode records its backup in the store.

        Without a target still (the frame comes from the video) there is nothing to replace:
        the restored frame is a new sidecar, named as Photos names a rendered edit
        (`IMG_E1234.HEIC` beside the reference's place), so it reads as the new key photo.
        """
        library = Path(self.settings.library or asset.reference.parent)
        output = self.settings.output
        if asset.target is None and output.mode == "replace":
            output = output.model_copy(update={"mode": "sidecar", "location": "tree"})
        target = asset.target or asset.reference.with_name(
            edited_name(asset.reference.stem) + asset.reference.suffix
        )
        plan = plan_output(target, library, output, references=(asset.reference,))
        quality = self._quality(plan.destination)
        if plan.kind == "replace":
            record = commit_replace(plan, image, like, provenance, quality=quality)
            restored = record.output or signature_of(plan.destination)
            self.store.record_backup(
                job_id=job.id,
                target_path=str(record.target),
                backup_path=str(record.backup),
                original_signature=record.original.to_dict(),
                restored_signature=restored.to_dict(),
            )
            return plan.destination, restored
        signature = write_image(
            plan.destination, image, like=like, xmp_provenance=provenance, quality=quality,
            keep_live_identity=plan.keep_live_identity,
        )
        return plan.destination, signature

    def _quality(self, path: Path) -> int:
        heic = path.suffix.lower() in {".heic", ".heif"}
        return self.settings.output.heic_quality if heic else self.settings.output.jpeg_quality

    def _provenance(self, job: Job, asset: LiveAsset, diagnostics: Any) -> dict[str, Any]:
        return {
            "restorer": self.settings.restorer.name,
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

    def _restorer_instance(self) -> Any:
        if self._restorer is None:
            self._restorer = get_restorer(
                self.settings.restorer.name, **restorer_options(self.settings)
            )
        return self._restorer

    def _drop_restorer(self) -> None:
        """Forget the model so its memory can be returned (idle timeout or device trouble)."""
        if self._restorer is None:
            return
        self._restorer = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        log.info("restorer_unloaded", restorer=self.settings.restorer.name)

    def _maybe_unload(self) -> None:
        idle = self.settings.restorer.idle_unload_seconds
        if self._restorer is not None and time.monotonic() - self._restorer_last_used > idle:
            self._drop_restorer()

    def _publish(
        self, state: WorkerState, *, job_id: int | None = None, progress: float | None = None,
        stage: str | None = None,
    ) -> None:
        """Keep this worker's row current for `lmd status`: on changes of state, and with the
        running job's progress on every heartbeat."""
        now = time.monotonic()
        fresh = now - self._published_at < WORKER_REFRESH_SECONDS
        if state == self._state and job_id is None and fresh:
            return
        self._state, self._published_at = state, now
        self.store.upsert_worker(
            worker_id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            state=state,
            job_id=job_id,
            progress=progress,
            stage=stage,
            window=describe_windows(self.settings.worker.windows),
            restorer=self.settings.restorer.name,
            device=self.settings.restorer.device,
        )
