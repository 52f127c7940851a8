"""The worker's restorer: built for the restorer a job names, kept between jobs (a heavy model
loads once), and checked to run on the weights the job was enqueued with.

A job pins its restorer's name and weights digest. The settings only say where weights live and
how to run them (device, memory, compile); when the configured checkpoint is no longer the one a
job was enqueued with, the job cannot be run as it says, and `WrongRestorer` fails it with the
reason instead of recording one restoration under another's name. The next scan, with the new
digest in its identities, enqueues the work again.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import structlog

from core import Restorer, get_restorer
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
        self._clock = clock
        self._last_used = clock()

    @property
    def loaded(self) -> bool:
        """Whether a restorer (and so, for `livemoments`, its weights) is held in memory."""
        return self._instance is not None

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

    def drop(self) -> None:
        """Forget the model (and its digest) so its memory can be returned: after an idle
        timeout or device trouble. The next job loads it again."""
        self._digests.clear()
        if self._instance is None:
            return
        name, self._instance, self._name = self._name, None, None
        torch = sys.modules.get("torch")  # only a restorer that imported torch holds its memory
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.info("restorer_unloaded", restorer=name)
