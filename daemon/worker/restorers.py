"""The worker's restorers: built for the restorer a job names, kept between jobs (a heavy model
loads once), and checked to run on the weights the job was enqueued with. Video jobs' clip
restorer is kept the same way (`for_clip`: one per process, by name and options), so
`livemoments-video` loads its models once, not per clip; the worker checks its weights itself
(`daemon.worker.video_job`).

One model in memory: `livemoments-video` runs its frames on the `livemoments` still restorer.
When this worker's still jobs use that restorer too, from the same checkpoint and with the
same device and memory options, the clip restorer is handed the instance held for stills
(`still=`) rather than building its own, so a GPU box keeps one copy of the SD3 models, not
two. `drop()` (idle unload, device trouble) lets go of both.

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
from pathlib import Path
from typing import Any

import structlog

from core import Restorer, get_restorer
from core.video import ClipRestorer, get_clip_restorer, still_restorer_of
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
        self._clip_key: tuple[str, str, int] | None = None
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
        return self._still(job.restorer)

    def _still(self, name: str) -> Restorer:
        """The still restorer `name`, built on first use and kept (another name replaces it,
        and drops a clip restorer that shared it)."""
        if self._instance is None or (self._given is None and self._name != name):
            if self._instance is not None:
                self.drop()
            self._instance = self._given or get_restorer(
                name, **restorer_options(self._settings, name)
            )
            self._name = name
        return self._instance

    def for_clip(
        self, name: str, options: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> ClipRestorer:
        """Clip restorer `name` built with `options` (`clip_restorer_options`), kept for the
        video jobs after it (a `livemoments-video` instance keeps its models for later clips);
        built anew only when the name or the options change. `params` are the video job's
        (its checkpoint): with them the clip restorer may share this worker's still restorer
        (`_shared_still`)."""
        still = self._shared_still(name, options, params or {})
        key = (name, json.dumps(dict(options), sort_keys=True, default=repr), id(still))
        if self._clip is None or self._clip_key != key:
            self._drop_clip()
            if still is None:
                self._clip = get_clip_restorer(name, **dict(options))
            else:  # its device and memory options are the still's own (checked equal)
                self._clip = get_clip_restorer(name, still=still)
            self._clip_key = key
            log.info("clip_restorer_built", restorer=name, shares_still=still is not None)
        return self._clip

    def _shared_still(
        self, name: str, options: Mapping[str, Any], params: Mapping[str, Any]
    ) -> Restorer | None:
        """The still restorer clip restorer `name` may run its frames on, or None for one of
        its own. Shared only where this worker's still jobs use that restorer (so a still job
        never swaps it for another), with every clip option equal to the still restorer's
        (device, memory, compile) and the video job's checkpoint the same directory as the
        stills' (the one the models are loaded from; a job of either kind has its pinned
        digest checked against it before it runs): then the frames are made as the clip
        restorer's own still would make them, from the one copy of the models."""
        still_name = still_restorer_of(name)
        if still_name is None or still_name != self._settings.restorer.name:
            return None
        own = restorer_options(self._settings, still_name)
        if any(key not in own or own[key] != value for key, value in options.items()):
            return None
        if not _same_directory(params.get("checkpoint"), own.get("checkpoint")):
            return None
        if self._given is not None and getattr(self._given, "name", None) != still_name:
            return None
        return self._still(still_name)

    def _drop_clip(self) -> None:
        clip, self._clip, self._clip_key = self._clip, None, None
        unload = getattr(clip, "unload", None)
        if callable(unload):
            unload()  # a clip restorer frees only the models it built (a shared still stays)

    def drop(self) -> None:
        """Forget the models (and their digests) so their memory can be returned: after an idle
        timeout or device trouble. The clip restorer goes first, so no reference to a still
        restorer it shared is left; the next job loads them again."""
        self._digests.clear()
        had_clip = self._clip is not None
        self._drop_clip()
        if self._instance is None:
            if had_clip:
                _empty_device_cache()
            return
        name, instance, self._instance, self._name = self._name, self._instance, None, None
        unload = getattr(instance, "unload", None)
        if callable(unload):  # its models go now, whoever else still holds the instance
            unload()
        _empty_device_cache()
        log.info("restorer_unloaded", restorer=name)


def _same_directory(a: Any, b: Any) -> bool:
    """Whether two configured checkpoint paths name one directory (both given)."""
    if not a or not b:
        return False
    return bool(Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve())


def _empty_device_cache() -> None:
    torch = sys.modules.get("torch")  # only a restorer that imported torch holds its memory
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
