"""The worker's restorers: built for the restorer a job names, kept between jobs (a heavy model
loads once), and checked to run on the weights the job was enqueued with. Video jobs' clip
restorer is kept the same way (`for_clip`: one per process, by name and options), so
`livemoments-video` loads its models once, not per clip; the worker checks its weights itself
(`daemon.worker.video_job`).

A job pins its restorer's name and weights digest. The settings only say where weights live and
how to run them (device, memory, compile); when the configured checkpoint is no longer the one a
job was enqueued with, the job cannot be run as it says, and `WrongRestorer` fails it with the
reason instead of recording one restoration under another's name. The next scan, with the new
digest in its identities, enqueues the work again.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from core import Restorer, get_restorer
from core.video import ClipRestorer, get_clip_restorer
from daemon.restorer_config import configured_weights_digest, restorer_options
from daemon.settings import Settings
from daemon.store import Job

log = structlog.get_logger(__name__)


class WrongRestorer(Exception):
    """The job cannot run on the restorer or weights available here (not retryable)."""


class RestorerHolder:
    """One restorer instance at a time, for the restorer the current job names.

    `restorer`, when given, is used for every job whatever its name (tests and embedders pass
    a ready instance); the weights check still applies, by the job's restorer name.
    """

    def __init__(
        self, settings: Settings, restorer: Restorer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._given = restorer
        self._instance: Restorer | None = restorer
        self._name: str | None = None
        self._digests: dict[str, str] = {}
        self._clip: ClipRestorer | None = None
        self._clip_key: tuple[str, str] | None = None
        self._clock = clock
        self._last_used = clock()

    @property
    def loaded(self) -> bool:
        """Whether a restorer (and so, for `livemoments`, its weights) is held in memory."""
        return self._instance is not None or self._clip is not None

    def idle_seconds(self) -> float:
        """How long since the restorer last ran (or was built)."""
        return self._clock() - self._last_used

    def used(self) -> None:
        self._last_used = self._clock()

    def _digest(self, name: str) -> str:
        """The configured weights' digest for `name`, computed once per loaded model."""
        if name not in self._digests:
            self._digests[name] = configured_weights_digest(self._settings, name)
        return self._digests[name]

    def for_job(self, job: Job) -> Restorer:
        configured = self._digest(job.restorer)
        if configured != job.weights_digest:
            raise WrongRestorer(
                f"job {job.id} was enqueued for {job.restorer} weights {job.weights_digest}, "
                f"but the configured weights are {configured}; the next scan enqueues it "
                "for these weights"
            )
        if self._instance is None or (self._given is None and self._name != job.restorer):
            self.drop()
            self._instance = self._given or get_restorer(
                job.restorer, **restorer_options(self._settings, job.restorer)
            )
            self._name = job.restorer
        return self._instance

    def for_clip(self, name: str, options: Mapping[str, Any]) -> ClipRestorer:
        """Clip restorer `name` built with `options` (`clip_restorer_options`), kept for the
        video jobs after it (a `livemoments-video` instance keeps its models for later clips);
        built anew only when the name or the options change."""
        key = (name, json.dumps(dict(options), sort_keys=True, default=repr))
        if self._clip is None or self._clip_key != key:
            self._drop_clip()
            self._clip = get_clip_restorer(name, **dict(options))
            self._clip_key = key
            log.info("clip_restorer_built", restorer=name)
        return self._clip

    def _drop_clip(self) -> None:
        clip, self._clip, self._clip_key = self._clip, None, None
        unload = getattr(clip, "unload", None)
        if callable(unload):
            unload()

    def drop(self) -> None:
        """Forget the models (and their digests) so their memory can be returned: after an idle
        timeout or device trouble. The next job loads them again."""
        self._digests.clear()
        had_clip = self._clip is not None
        self._drop_clip()
        if self._instance is None:
            if had_clip:
                _empty_device_cache()
            return
        name, self._instance, self._name = self._name, None, None
        _empty_device_cache()
        log.info("restorer_unloaded", restorer=name)


def _empty_device_cache() -> None:
    torch = sys.modules.get("torch")  # only a restorer that imported torch holds its memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
